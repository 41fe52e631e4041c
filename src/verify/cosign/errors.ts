import type { Failure } from '../types.ts';

/**
 * Stable failure codes of the cosign verifier. Each check throws a `CheckFailure` with one of
 * these; the verifier records the first one per signature.
 */
export type CosignFailureCode =
  | 'no-signatures'
  | 'malformed'
  | 'unsupported'
  | 'digest-mismatch'
  | 'signature-invalid'
  | 'key-mismatch'
  | 'tlog-missing'
  | 'rekor-set-invalid'
  | 'tlog-body-mismatch'
  | 'tlog-invalid'
  | 'timestamp-invalid'
  | 'sct-missing'
  | 'sct-invalid'
  | 'chain-invalid'
  | 'certificate-time-invalid'
  | 'identity-mismatch'
  | 'fetch-failed';

export class CheckFailure extends Error {
  readonly code: CosignFailureCode;
  constructor(code: CosignFailureCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckFailure';
    this.code = code;
  }
  toFailure(): Failure {
    return { code: this.code, message: this.message };
  }
}

export function fail(code: CosignFailureCode, message: string, cause?: unknown): never {
  throw new CheckFailure(code, message, cause === undefined ? undefined : { cause });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
