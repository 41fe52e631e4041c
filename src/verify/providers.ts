import { cosignProvider } from './cosign/index.ts';
import { createNotationProvider } from './notation/index.ts';
import type { Provider, ProviderName } from './types.ts';

/** Every signature provider, by the name used in spec.verify.provider; the caller owns their caches. */
export function createProviders(): Record<ProviderName, Provider> {
  return {
    notation: createNotationProvider(),
    cosign: cosignProvider,
  };
}
