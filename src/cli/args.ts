// Small helpers for subcommand flags (node:util parseArgs underneath).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** "64Mi", "1G", "1048576" → bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid size '${s}'`);
  const mult: Record<string, number> = { '': 1, K: 1e3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Math.floor(Number(m[1]) * mult[m[2] ?? '']!);
}

/** ":9090" → ["0.0.0.0", 9090]; "127.0.0.1:0" → ["127.0.0.1", 0]. */
export function parseAddr(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  if (i < 0) throw new UsageError(`invalid address '${a}', expected host:port`);
  const host = a.slice(0, i) || '0.0.0.0';
  const port = Number(a.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid port in '${a}'`);
  return [host.replace(/^\[|\]$/g, ''), port];
}
