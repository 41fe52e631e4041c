// Events come from one place: the difference between the status before and after a reconcile.
// A new artifact, a recovery, and each failure whose reason or message changed are announced
// once, so a retried failure does not flood the namespace's events.
import { ConditionType as CT, Reason, findCondition } from '../api/conditions.ts';
import type { OCIRepository, OCIRepositoryStatus } from '../api/schema.ts';
import type { LoggedFailures } from './reconcile.ts';
import { PublishedCondition } from './external-artifact.ts';

export interface KubeEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  annotations?: Record<string, string>;
}

/** Conditions whose abnormal state is worth a Warning when it first appears or changes. */
const warnWhen: { type: string; status: 'True' | 'False' | 'Unknown'; reason?: string }[] = [
  { type: CT.Stalled, status: 'True' },
  { type: CT.FetchFailed, status: 'True' },
  { type: CT.StorageOperationFailed, status: 'True' },
  { type: CT.SourceVerified, status: 'False' },
  { type: CT.SourceVerified, status: 'Unknown', reason: Reason.VerificationAudited },
  // Not published to Flux: a conflicting ExternalArtifact, or writes refused.
  { type: PublishedCondition, status: 'False' },
];

/**
 * Events for the change from `prev` to `next`. `logged` are the checks a permissive policy only
 * logged for the verified revision: announced when SourceVerified changed.
 */
export function notify(obj: OCIRepository, prev: OCIRepositoryStatus | undefined, next: OCIRepositoryStatus, logged?: LoggedFailures): KubeEvent[] {
  const events: KubeEvent[] = [];
  const a = next.artifact;
  const newArtifact = !!a && a.digest !== prev?.artifact?.digest;
  if (a && newArtifact) {
    const m = a.metadata ?? {};
    const src = m['org.opencontainers.image.source'];
    const rev = m['org.opencontainers.image.revision'];
    events.push({
      type: 'Normal',
      reason: 'NewArtifact',
      message: `stored artifact with revision '${a.revision}' from '${obj.spec.url}'${src && rev ? `, origin source '${src}', origin revision '${rev}'` : ''}`,
      annotations: { 'source.ocisource.dev/revision': a.revision, 'source.ocisource.dev/digest': a.digest },
    });
  }
  for (const w of warnWhen) {
    const c = findCondition(next.conditions, w.type);
    if (!c || c.status !== w.status || (w.reason && c.reason !== w.reason)) continue;
    const p = findCondition(prev?.conditions, w.type);
    if (p && p.status === c.status && p.reason === c.reason && p.message === c.message) continue;
    events.push({ type: 'Warning', reason: c.reason, message: c.message });
  }
  const verified = findCondition(next.conditions, CT.SourceVerified);
  const before = findCondition(prev?.conditions, CT.SourceVerified);
  if (logged && verified?.status === 'True' && (before?.status !== 'True' || before.message !== verified.message)) {
    events.push({ type: 'Warning', reason: 'VerificationWarning', message: `signature of revision ${logged.revision} passed with logged failures: ${logged.failures.join('; ')}` });
  }
  const wasFailing = findCondition(prev?.conditions, CT.Ready)?.status === 'False';
  const ready = findCondition(next.conditions, CT.Ready);
  if (wasFailing && ready?.status === 'True' && a && !newArtifact) {
    events.push({ type: 'Normal', reason: Reason.Succeeded, message: `stored artifact with revision '${a.revision}' from '${obj.spec.url}'` });
  }
  return events;
}
