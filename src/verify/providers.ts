import type { Provider, ProviderName } from './types.ts';

/**
 * A provider whose stack is imported on its first `prepare`: Sigstore, PKI.js and the X.509 code
 * cost ~26 MB of RSS, which a controller with no verifying object (or only one provider in use)
 * should not pay. Concurrent first calls share one import.
 */
function lazy(name: ProviderName, load: () => Promise<Provider>): Provider {
  let loading: Promise<Provider> | undefined;
  return {
    name,
    async prepare(config) {
      loading ??= load().catch((err: unknown) => {
        loading = undefined; // a failed import (e.g. a file missing mid-upgrade) is retried
        throw err;
      });
      return (await loading).prepare(config);
    },
  };
}

/** Every signature provider, by the name used in spec.verify.provider; the caller owns their caches. */
export function createProviders(): Record<ProviderName, Provider> {
  return {
    notation: lazy('notation', async () => (await import('./notation/index.ts')).createNotationProvider()),
    cosign: lazy('cosign', async () => (await import('./cosign/index.ts')).cosignProvider),
  };
}
