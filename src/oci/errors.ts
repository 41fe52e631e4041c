/** A registry call failed. `status` is the HTTP status (0 for network errors and timeouts). */
export class RegistryError extends Error {
  readonly status: number;
  /** Distribution-spec error code from the body (e.g. MANIFEST_UNKNOWN), when the registry sent one. */
  readonly code: string | undefined;
  constructor(message: string, status = 0, code?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
  }
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
  get isNotFound(): boolean {
    return this.status === 404;
  }
}
