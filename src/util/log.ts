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
