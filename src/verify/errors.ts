// One error style for both providers (as @sigstore/verify does it): a check that fails throws a
// VerificationError carrying a code from the closed list in types.ts. The signature loop (signatures.ts)
// records it as that signature's failure; budgets throw api/limits' LimitError the same way.
import type { Failure, FailureCode } from './types.ts';

export class VerificationError extends Error {
  readonly code: FailureCode;
  constructor(code: FailureCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VerificationError';
    this.code = code;
  }
  toFailure(): Failure {
    return { code: this.code, message: this.message };
  }
}

/** Throws a VerificationError. */
export function fail(code: FailureCode, message: string, cause?: unknown): never {
  throw new VerificationError(code, message, cause === undefined ? undefined : { cause });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
