import { cosignProvider } from './cosign/index.ts';
import { notationProvider } from './notation/index.ts';
import type { Provider, ProviderName } from './types.ts';

/** Every signature provider, by the name used in spec.verify.provider. */
export const providers: Record<ProviderName, Provider> = {
  notation: notationProvider,
  cosign: cosignProvider,
};
