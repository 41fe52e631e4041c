// Budgets for every input a tenant or a registry controls. A reconcile that hits one fails with a
// condition naming the budget and the flag that raises it, instead of exhausting the process.
// Modules take the budgets they need through their options; defaults live here, in one table, so
// docs/security.md and `run --help` can list them.

/** A budget was exceeded. `limit` is the budget's name (a key of `Limits`); `flag` the CLI flag that sets it, if any. */
export class LimitError extends Error {
  readonly code = 'limit-exceeded';
  readonly limit: string;
  readonly flag: string | undefined;
  constructor(limit: string, message: string, flag?: string) {
    super(flag ? `${message} (limit ${limit}; raise it with --${flag})` : `${message} (limit ${limit})`);
    this.name = 'LimitError';
    this.limit = limit;
    this.flag = flag;
  }
}

export interface Limits {
  /** Bytes of extracted content per artifact; 0 = unlimited. */
  artifactMaxSize: number;
  /** Signatures tried per artifact; the first that passes wins. */
  maxSignatures: number;
}

export const DefaultLimits: Limits = {
  artifactMaxSize: 512 << 20,
  maxSignatures: 10,
};
