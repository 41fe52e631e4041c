// Cosign signature provider: public keys from a Secret, or keyless (Fulcio identities) against a
// Sigstore trusted root. Signatures are cosign v3 Sigstore bundles (OCI referrers) first, then the
// legacy `sha256-<hex>.sig` tag's simple-signing layers, tried by the shared loop (../signatures.ts).
import { createHash } from 'node:crypto';
import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { errorText, fail, VerificationError } from '../errors.ts';
import { resolveLimits, verifySignatures, type Candidate } from '../signatures.ts';
import type { PreparedVerifier, Provider, VerificationOutcome, VerifyConfig, VerifyOptions, VerifyTarget } from '../types.ts';
import { VerifyConfigError } from '../types.ts';
import type { CheckContext, SignatureResult, TrustMode } from './context.ts';
import { discoverBundles, discoverLegacy, loadBundle, signatureTag } from './discovery.ts';
import { parsePublicKeyPem, type VerificationKey } from './keys.ts';
import { verifyLegacyLayer } from './legacy.ts';
import { publicGoodRootDigest, PublicGoodSource } from './public-good.ts';
import type { TrustRoot } from './trustroot.ts';

// Key-signed `.sig` layers without a Rekor entry, the common case with a public key Secret, need
// none of Sigstore's or our X.509 code: the bundle verifier, identity rules, the trusted root's
// parser and the keyless checks load when first needed (about 20 MB of a controller's memory).

/** The Secret key holding a custom trusted root (as `cosign verify --trusted-root`). */
const TRUSTED_ROOT_KEY = 'trusted_root.json';

/** Which trusted root applies, known by name and digest before (and without) parsing it. */
interface PreparedTrust {
  source: string;
  /** Hex SHA-256 of its trusted_root.json bytes. */
  digest: string;
  load(): Promise<TrustRoot>;
}


function loadKeys(config: VerifyConfig): VerificationKey[] {
  const secret = config.secret!;
  const names = Object.keys(secret.data).filter((k) => k.endsWith('.pub')).sort();
  if (names.length === 0) {
    throw new VerifyConfigError('no-public-keys', `secret ${secret.name}: no key ending in '.pub' found (cosign public keys must use the .pub extension)`);
  }
  // Counted before any is parsed; every signature may be tried against every key.
  const max = DefaultLimits.maxPublicKeys;
  if (names.length > max) throw new LimitError('maxPublicKeys', `secret ${secret.name}: ${names.length} keys ending in '.pub', more than ${max}`);
  return names.map((name) => {
    try {
      return parsePublicKeyPem(name, secret.data[name]!.toString('utf8'));
    } catch (err) {
      throw new VerifyConfigError('invalid-public-key', `secret ${secret.name}: key '${name}': ${errorText(err)}`);
    }
  });
}

/**
 * A trusted root from the Secret is parsed now, so a bad one is a configuration error at once.
 * The embedded public-good root is parsed on first use: in key mode that is the first signature
 * with a Rekor entry or the first bundle, and perhaps never.
 */
async function prepareTrust(config: VerifyConfig): Promise<PreparedTrust> {
  const s = config.trustedRoot;
  if (!s) {
    let loaded: Promise<TrustRoot> | undefined;
    return { source: PublicGoodSource, digest: publicGoodRootDigest(), load: () => (loaded ??= import('./trustroot.ts').then((m) => m.publicGoodTrustRoot())) };
  }
  const bytes = s.data[TRUSTED_ROOT_KEY];
  if (!bytes) {
    throw new VerifyConfigError('missing-trusted-root', `secret ${s.name}: key '${TRUSTED_ROOT_KEY}' not found`);
  }
  const { parseTrustedRoot } = await import('./trustroot.ts');
  let root: TrustRoot;
  try {
    root = parseTrustedRoot(bytes, `secret ${s.name} key '${TRUSTED_ROOT_KEY}'`);
  } catch (err) {
    throw new VerifyConfigError('invalid-trusted-root', `secret ${s.name}: key '${TRUSTED_ROOT_KEY}': ${errorText(err)}`);
  }
  const ready = Promise.resolve(root);
  return { source: root.source, digest: root.digest, load: () => ready };
}

function fingerprintOf(mode: TrustMode, trust: PreparedTrust): string {
  const canonical = JSON.stringify({
    v: 1,
    provider: 'cosign',
    mode: mode.kind,
    keys: mode.kind === 'key' ? mode.keys.map((k) => [k.name, k.fingerprint]) : [],
    identities: mode.kind === 'keyless' ? mode.rules.map((r) => [r.source.issuer, r.source.subject]) : [],
    trustedRoot: trust.digest,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

function describe(res: SignatureResult): string {
  const fmt = res.format === 'bundle' ? 'Sigstore bundle' : 'legacy .sig';
  let who: string;
  if (res.key) who = `key '${res.key.name}' (${res.key.algorithm}, sha256:${res.key.fingerprint})`;
  else if (res.identity) who = `'${res.identity.subjects.join(', ')}' issued by '${res.identity.issuer}'`;
  else who = 'unknown signer';
  const tlog = res.tlog
    ? `, Rekor log index ${res.tlog.logIndex} integrated ${new Date(res.tlog.integratedTime * 1000).toISOString()}`
    : '';
  return `cosign ${fmt} signature verified, signed by ${who}${tlog}`;
}

class CosignVerifier implements PreparedVerifier {
  readonly provider = 'cosign' as const;
  readonly fingerprint: string;
  readonly notes: string[];
  readonly #mode: TrustMode;
  readonly #trust: PreparedTrust;

  constructor(mode: TrustMode, trust: PreparedTrust, notes: string[]) {
    this.#mode = mode;
    this.#trust = trust;
    this.notes = notes;
    this.fingerprint = fingerprintOf(mode, trust);
  }

  verify(target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome> {
    const { registry } = target;
    const digest = target.descriptor.digest;
    const ref = `${registry.registry}/${registry.repository}@${digest}`;
    const trust = this.#trust;
    const ctx = { mode: this.#mode, limits: resolveLimits(opts.limits), now: opts.now ?? new Date(), ...(opts.signal ? { signal: opts.signal } : {}) };
    const checkContext = async (): Promise<CheckContext> => ({ ...ctx, trust: await trust.load() });
    const base = { provider: 'cosign', mode: ctx.mode.kind, trustedRoot: trust.source };
    const passed = (res: SignatureResult, extra: Record<string, unknown>) => ({
      passed: true as const,
      authenticity: 'established' as const,
      message: describe(res),
      details: {
        format: res.format,
        ...(res.key ? { key: res.key } : {}),
        ...(res.identity ? { identity: res.identity } : {}),
        ...(res.tlog ? { rekor: { ...res.tlog, integratedTimeISO: new Date(res.tlog.integratedTime * 1000).toISOString() } } : {}),
        ...(res.signingTime ? { signingTime: res.signingTime } : {}),
        ...extra,
      },
      warnings: [],
    });
    return verifySignatures('cosign', ref, opts, async () => {
      if (!/^sha256:[a-f0-9]{64}$/.test(digest)) fail('unsupported', `cosign verification needs a sha256 digest, got '${digest}'`);
      const notes: string[] = [];
      async function* candidates(): AsyncGenerator<Candidate> {
        // 1. cosign v3 Sigstore bundles (OCI 1.1 referrers).
        let bundles: Awaited<ReturnType<typeof discoverBundles>> = [];
        let bundleError: unknown;
        try {
          bundles = await discoverBundles(registry, digest);
        } catch (err) {
          if (ctx.signal?.aborted) throw err;
          bundleError = err;
          notes.push(`bundle discovery failed, falling back to the .sig tag: ${errorText(err)}`);
          opts.log?.warn({ err, ref }, 'cosign bundle discovery failed; trying legacy .sig');
        }
        for (const desc of bundles) {
          yield {
            signature: desc.digest,
            check: async () => {
              const [bytes, { verifyOciBundle }, bundleContext] = await Promise.all([loadBundle(registry, desc, digest, ctx.limits), import('./bundle.ts'), checkContext()]);
              const res = verifyOciBundle(bytes, digest, bundleContext);
              return passed(res, { signature: desc.digest, predicateType: res.predicateType });
            },
          };
        }
        // 2. Legacy `sha256-<hex>.sig` simple-signing layers.
        let legacy: Awaited<ReturnType<typeof discoverLegacy>> = null;
        try {
          legacy = await discoverLegacy(registry, digest, ctx.limits);
        } catch (err) {
          if (!(err instanceof VerificationError)) throw err;
          yield { signature: signatureTag(digest), check: () => Promise.reject(err) };
          return;
        }
        if (legacy === null && bundleError !== undefined) throw bundleError;
        for (const [i, layer] of (legacy?.layers ?? []).entries()) {
          const signature = `${legacy!.manifestDigest} layer ${i + 1}`;
          yield {
            signature,
            check: async () => passed(await verifyLegacyLayer(registry, layer, digest, { ...ctx, trust: trust.load }), { signature, signatureManifest: legacy!.manifestDigest, payload: layer.digest }),
          };
        }
      }
      return {
        candidates: candidates(),
        notes,
        details: base,
        noSignatures: () => `no signatures found for '${ref}'`,
        rejected: (attempts) => `no matching signatures were found for '${ref}': ${attempts.map((a) => `${a.signature}: ${a.failure!.code}: ${a.failure!.message}`).join('; ')}`,
      };
    });
  }
}

async function prepare(config: VerifyConfig): Promise<PreparedVerifier> {
  if (config.provider !== 'cosign') {
    throw new VerifyConfigError('wrong-provider', `cosign verifier cannot prepare provider '${config.provider}'`);
  }
  const notes: string[] = [];
  const trust = await prepareTrust(config);
  let mode: TrustMode;
  if (config.secret) {
    mode = { kind: 'key', keys: loadKeys(config) };
    if (config.matchOIDCIdentity?.length) notes.push('matchOIDCIdentity is ignored: a public key Secret is set');
  } else {
    const rules = config.matchOIDCIdentity ?? [];
    if (rules.length === 0) {
      throw new VerifyConfigError(
        'no-identity',
        'keyless cosign verification needs at least one matchOIDCIdentity entry (issuer and subject regular expressions)',
      );
    }
    const { compileRules } = await import('./identity.ts');
    try {
      mode = { kind: 'keyless', rules: compileRules(rules) };
    } catch (err) {
      throw new VerifyConfigError('invalid-identity', errorText(err));
    }
    // Keyless always needs the root: parse it now, so a root without CAs is a configuration error.
    if ((await trust.load()).material.certificateAuthorities.length === 0) {
      throw new VerifyConfigError('invalid-trusted-root', `${trust.source}: no certificate authorities for keyless verification`);
    }
    notes.push(`keyless: certificates must chain to ${trust.source}; identity regular expressions are unanchored (as in cosign): write ^…$`);
  }
  return new CosignVerifier(mode, trust, notes);
}

export const cosignProvider: Provider = { name: 'cosign', prepare };
