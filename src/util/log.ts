import pino, { type Logger } from 'pino';

/** JSON logs; Secret-bearing fields are redacted in case one is ever passed by mistake. */
export function makeLogger(level = 'info', dest: number | string = 1): Logger {
  return pino(
    {
      level,
      base: { component: 'oci-source-controller' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['data', '*.data', 'password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'credentials'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest, sync: false }),
  );
}

const off = (): void => undefined;

/**
 * `parent.child(bindings)`, made on first use: a logging call at a level that is off costs
 * nothing. A steady-state reconcile logs only at debug, and making a child serialises and
 * redacts its bindings each time.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy(parent, {
    get(target, prop) {
      if (!child && typeof prop === 'string' && prop in target.levels.values && !target.isLevelEnabled(prop)) return off;
      child ??= target.child(bindings);
      const v: unknown = Reflect.get(child, prop, child);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(child) : v;
    },
  });
}
