// The part of verification both providers share: try the discovered signatures one by one until one
// passes, within the budgets, combine the failures when none does, and turn everything that can go wrong
// (a deadline, a registry error, a budget, a bug) into a typed outcome. Providers supply the candidates
// (discovery happens while they are pulled) and their own wording.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DefaultLimits, LimitError, type Limits } from '../api/limits.ts';
import { RegistryError } from '../oci/errors.ts';
import { errorText, VerificationError } from './errors.ts';
import type { Failure, FailedOutcome, FailureCode, ProviderName, SignatureAttempt, VerificationOutcome, VerifyOptions } from './types.ts';

/** What one signature proved, or why it failed. */
export type CheckResult =
  | { passed: true; authenticity: 'established' | 'audited'; message: string; details: Record<string, unknown>; warnings: Failure[] }
  | { passed: false; failure: Failure; warnings: Failure[] };

export interface Candidate {
  /** Digest of the signature manifest, or "<manifest digest> layer N". */
  signature: string;
  /**
   * Fetches and verifies this signature. A VerificationError or LimitError is this signature's failure;
   * any other error ends the whole verification. `not-a-signature`: skipped, not counted as an attempt.
   */
  check(): Promise<CheckResult | 'not-a-signature'>;
}

export interface SearchPlan {
  /** Pulled one at a time; discovery (listing referrers, tags) happens while pulling. */
  candidates: AsyncIterable<Candidate>;
  /** Notes gathered during discovery (e.g. a fallback taken); they become warnings of the outcome. */
  notes: string[];
  /** Merged into every outcome's details. */
  details: Record<string, unknown>;
  /** Provider wording when no signature was found. */
  noSignatures(): string;
  /** Provider wording when none passed; `stoppedAt` is set when `maxSignatures` stopped the search. */
  rejected(attempts: SignatureAttempt[], stoppedAt: number | undefined): string;
}

export interface SkipPlan {
  skip: true;
  message: string;
  details: Record<string, unknown>;
}

/** Budgets with the defaults filled in. */
export function resolveLimits(l: Partial<Limits> | undefined): Limits {
  const out = { ...DefaultLimits };
  for (const [k, v] of Object.entries(l ?? {})) if (typeof v === 'number' && v > 0) (out as Record<string, number>)[k] = v;
  return out;
}

/**
 * Runs `plan` (statement selection, digest checks…) then the candidates it returns. Never throws.
 * `reference` is `<registry>/<repository>@<digest>`.
 */
export async function verifySignatures(provider: ProviderName, reference: string, opts: VerifyOptions, plan: () => Promise<SearchPlan | SkipPlan>): Promise<VerificationOutcome> {
  const limits = resolveLimits(opts.limits);
  const attempts: SignatureAttempt[] = [];
  let phase: 'discovery' | 'verification' = 'discovery';
  let details: Record<string, unknown> = {};
  const failed = (code: FailureCode, message: string, warnings: string[] = []): FailedOutcome => ({ status: 'failed', provider, code, message, details, warnings, attempts });
  try {
    const p = await plan();
    details = p.details;
    if ('skip' in p) return { status: 'skipped', authenticity: 'skipped', provider, message: p.message, details, warnings: [], attempts };
    let opened = 0;
    let stoppedAt: number | undefined;
    let budgetHit: LimitError | undefined;
    for await (const c of p.candidates) {
      if (attempts.length >= limits.maxSignatures) {
        stoppedAt = limits.maxSignatures;
        break;
      }
      // Never below maxSignatures, so that raising --max-signatures alone is enough.
      const maxOpened = Math.max(limits.maxSignatureReferrers, limits.maxSignatures);
      if (++opened > maxOpened) {
        budgetHit = new LimitError('maxSignatureReferrers', `stopped looking for signatures of ${reference} after opening ${maxOpened} referrers`);
        break;
      }
      phase = 'verification';
      // Let timers, probes and other objects run between signatures, and honour the deadline.
      await nextTurn();
      opts.signal?.throwIfAborted();
      const r = await check(c);
      if (r === 'not-a-signature') {
        phase = 'discovery';
        continue;
      }
      // A check that failed because the deadline cut its requests short is a timeout, not a rejection.
      if (!r.passed) opts.signal?.throwIfAborted();
      attempts.push({ signature: c.signature, ...(r.passed ? {} : { failure: r.failure }), ...(r.warnings.length ? { warnings: r.warnings } : {}) });
      if (r.passed) {
        return {
          status: 'verified',
          authenticity: r.authenticity,
          provider,
          signature: c.signature,
          message: r.message,
          details: { ...details, ...r.details },
          warnings: [...p.notes, ...r.warnings.map((w) => w.message)],
          attempts,
        };
      }
      phase = 'discovery';
    }
    const warnings = [...p.notes, ...attempts.flatMap((a) => (a.warnings ?? []).map((w) => w.message))];
    if (attempts.length === 0) return failed(budgetHit ? 'limit-exceeded' : 'no-signatures', budgetHit?.message ?? p.noSignatures(), warnings);
    if (stoppedAt !== undefined) details = { ...details, limitReached: stoppedAt };
    const codes = new Set(attempts.map((a) => a.failure!.code));
    const code = codes.size === 1 ? [...codes][0]! : 'all-failed';
    return failed(code, p.rejected(attempts, stoppedAt) + (budgetHit ? ` ${budgetHit.message}` : ''), warnings);
  } catch (err) {
    if (opts.signal?.aborted) {
      return failed('timeout', `signature ${phase} for ${reference} did not finish within ${opts.deadline ?? 'the time allowed'}`);
    }
    if (err instanceof VerificationError) return failed(err.code, err.message);
    if (err instanceof LimitError) return failed('limit-exceeded', err.message);
    if (err instanceof RegistryError) return failed('registry-error', `cannot read signatures from ${reference.slice(0, reference.lastIndexOf('@'))}: ${err.message}`);
    opts.log?.error({ err, reference }, 'unexpected error during signature verification');
    return failed('internal-error', `signature ${phase} for ${reference} failed unexpectedly: ${errorText(err)}`);
  }
}

async function check(c: Candidate): Promise<CheckResult | 'not-a-signature'> {
  try {
    return await c.check();
  } catch (err) {
    if (err instanceof VerificationError) return { passed: false, failure: err.toFailure(), warnings: [] };
    if (err instanceof LimitError) return { passed: false, failure: { code: 'limit-exceeded', message: err.message }, warnings: [] };
    throw err;
  }
}
