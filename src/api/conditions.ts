// Condition types and reasons. These strings are a public API: users `kubectl wait` on them and
// alerting matches them. They follow Flux's source-controller vocabulary.
import type { Condition } from './schema.ts';

export const ConditionType = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  ArtifactInStorage: 'ArtifactInStorage',
  ArtifactOutdated: 'ArtifactOutdated',
  FetchFailed: 'FetchFailed',
  StorageOperationFailed: 'StorageOperationFailed',
  SourceVerified: 'SourceVerified',
} as const;
export type ConditionTypeName = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  Succeeded: 'Succeeded',
  Progressing: 'Progressing',
  ProgressingWithRetry: 'ProgressingWithRetry',
  NewRevision: 'NewRevision',
  // FetchFailed
  AuthenticationFailed: 'AuthenticationFailed',
  URLInvalid: 'URLInvalid',
  ReadOperationFailed: 'ReadOperationFailed',
  OCIArtifactPullFailed: 'OCIArtifactPullFailed',
  OCIArtifactLayerOperationFailed: 'OCIArtifactLayerOperationFailed',
  // StorageOperationFailed
  DirectoryCreationFailed: 'DirectoryCreationFailed',
  StatOperationFailed: 'StatOperationFailed',
  InvalidPath: 'InvalidPath',
  ArchiveOperationFailed: 'ArchiveOperationFailed',
  // SourceVerified
  VerificationError: 'VerificationError',
  /** SourceVerified=Unknown: the trust policy's level is `skip` for this artifact. */
  VerificationSkipped: 'VerificationSkipped',
  /**
   * SourceVerified=Unknown: at notation level `audit` the signature was checked but its
   * authenticity failed; the artifact is stored (that is what audit means), never marked verified.
   */
  VerificationAudited: 'VerificationAudited',
  // Stalled
  InvalidSpec: 'InvalidSpec',
} as const;

type Status = Condition['status'];

/** Conditions present only when True ("abnormal-true"): their presence means something is wrong or in flight. */
const negativePolarity = new Set<string>([
  ConditionType.StorageOperationFailed,
  ConditionType.FetchFailed,
  ConditionType.ArtifactOutdated,
  ConditionType.Stalled,
  ConditionType.Reconciling,
]);

/** Ready takes its reason and message from the first of these that applies (Flux's order). */
const summaryOrder = [
  ConditionType.StorageOperationFailed,
  ConditionType.FetchFailed,
  ConditionType.ArtifactOutdated,
  ConditionType.ArtifactInStorage,
  ConditionType.SourceVerified,
  ConditionType.Stalled,
  ConditionType.Reconciling,
] as const;

export function findCondition(conds: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}

/**
 * Sets a condition, keeping lastTransitionTime when the status does not change, so an unchanged
 * reconcile produces an identical status and no API write.
 */
export function setCondition(
  conds: Condition[],
  type: string,
  status: Status,
  reason: string,
  message: string,
  generation: number | undefined,
  now: Date = new Date(),
): Condition[] {
  const prev = findCondition(conds, type);
  const next: Condition = {
    type,
    status,
    reason,
    message: truncate(message),
    lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : rfc3339(now),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  const out = conds.filter((c) => c.type !== type);
  out.push(next);
  return out;
}

export function removeCondition(conds: Condition[], type: string): Condition[] {
  return conds.filter((c) => c.type !== type);
}

/**
 * Computes Ready from the other conditions as Flux's summarize does:
 * - SourceVerified is bipolar: when False, Ready is False with its reason and message.
 * - Otherwise the first negative-polarity condition that is True makes Ready False (or Unknown
 *   for Reconciling alone: work in progress).
 * - Otherwise Ready is True with the message of the first positive condition present.
 */
export function summarizeReady(conds: Condition[], generation: number | undefined, now: Date = new Date()): Condition[] {
  const verified = findCondition(conds, ConditionType.SourceVerified);
  if (verified?.status === 'False') {
    return setCondition(conds, ConditionType.Ready, 'False', verified.reason, verified.message, generation, now);
  }
  for (const type of summaryOrder) {
    const c = findCondition(conds, type);
    if (!c || !negativePolarity.has(type) || c.status !== 'True') continue;
    if (type === ConditionType.Reconciling) {
      // Alone, Reconciling means "in progress": Ready Unknown, as kstatus expects.
      return setCondition(conds, ConditionType.Ready, 'Unknown', c.reason, c.message, generation, now);
    }
    return setCondition(conds, ConditionType.Ready, 'False', c.reason, c.message, generation, now);
  }
  for (const type of summaryOrder) {
    const c = findCondition(conds, type);
    if (!c || negativePolarity.has(type)) continue;
    if (c.status === 'True') {
      return setCondition(conds, ConditionType.Ready, 'True', Reason.Succeeded, c.message, generation, now);
    }
  }
  return setCondition(conds, ConditionType.Ready, 'Unknown', Reason.Progressing, 'reconciliation in progress', generation, now);
}

/** Orders conditions deterministically (Ready first) so status diffs are stable. */
export function sortConditions(conds: Condition[]): Condition[] {
  const rank = (t: string) => {
    const order: string[] = [ConditionType.Ready, ConditionType.Stalled, ConditionType.Reconciling, ...summaryOrder];
    const i = order.indexOf(t);
    return i < 0 ? order.length : i;
  };
  return [...conds].sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

export function rfc3339(d: Date): string {
  // metav1.Time has second precision; keeping it avoids spurious diffs after a round trip.
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function truncate(msg: string): string {
  return msg.length > 32000 ? msg.slice(0, 31990) + ' …(cut)' : msg;
}
