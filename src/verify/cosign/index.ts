import { createHash } from 'node:crypto';
import type {
  PreparedVerifier,
  Provider,
  SignatureAttempt,
  VerificationOutcome,
  VerifyConfig,
  VerifyOptions,
  VerifyTarget,
} from '../types.ts';
import { VerifyConfigError } from '../types.ts';
import { verifyOciBundle } from './bundle.ts';
import type { CosignContext, SignatureResult, TrustMode } from './context.ts';
import { discoverBundles, discoverLegacy, loadBundle, signatureTag } from './discovery.ts';
import { CheckFailure, errorText } from './errors.ts';
import { compileRules } from './identity.ts';
import { parsePublicKeyPem, type VerificationKey } from './keys.ts';
import { verifyLegacyLayer } from './legacy.ts';
import { parseTrustedRoot, publicGoodTrustRoot, TRUSTED_ROOT_KEY, type TrustRoot } from './trustroot.ts';

export type { CosignContext, SignatureResult } from './context.ts';
export type { CosignFailureCode } from './errors.ts';

const DEFAULT_MAX_SIGNATURES = 10;

function loadKeys(config: VerifyConfig): VerificationKey[] {
  const secret = config.secret!;
  const names = Object.keys(secret.data).filter((k) => k.endsWith('.pub')).sort();
  if (names.length === 0) {
    throw new VerifyConfigError('no-public-keys', `secret ${secret.name}: no key ending in '.pub' found (cosign public keys must use the .pub extension)`);
  }
  return names.map((name) => {
    try {
      return parsePublicKeyPem(name, secret.data[name]!.toString('utf8'));
    } catch (err) {
      throw new VerifyConfigError('invalid-public-key', `secret ${secret.name}: key '${name}': ${errorText(err)}`);
    }
  });
}

function loadTrustRoot(config: VerifyConfig): TrustRoot {
  const s = config.trustedRoot;
  if (!s) return publicGoodTrustRoot();
  const bytes = s.data[TRUSTED_ROOT_KEY];
  if (!bytes) {
    throw new VerifyConfigError('missing-trusted-root', `secret ${s.name}: key '${TRUSTED_ROOT_KEY}' not found`);
  }
  try {
    return parseTrustedRoot(bytes, `secret ${s.name} key '${TRUSTED_ROOT_KEY}'`);
  } catch (err) {
    throw new VerifyConfigError('invalid-trusted-root', `secret ${s.name}: key '${TRUSTED_ROOT_KEY}': ${errorText(err)}`);
  }
}

function fingerprintOf(mode: TrustMode, trust: TrustRoot): string {
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

function label(a: SignatureAttempt): string {
  return a.failure ? `${a.signature}: ${a.failure.code}: ${a.failure.message}` : a.signature;
}

function failed(ref: string, attempts: SignatureAttempt[], warnings: string[]): VerificationOutcome {
  if (attempts.length === 0) {
    return {
      status: 'failed',
      code: 'no-signatures',
      message: `no signatures found for '${ref}'`,
      details: { ref },
      warnings,
      attempts,
    };
  }
  const codes = new Set(attempts.map((a) => a.failure?.code ?? 'unknown'));
  const code = codes.size === 1 ? [...codes][0]! : 'all-failed';
  return {
    status: 'failed',
    code,
    message: `no matching signatures were found for '${ref}': ${attempts.map(label).join('; ')}`,
    details: { ref, attempts: attempts.length },
    warnings,
    attempts,
  };
}

class CosignVerifier implements PreparedVerifier {
  readonly provider = 'cosign' as const;
  readonly fingerprint: string;
  readonly notes: string[];
  readonly #ctx: CosignContext;

  constructor(ctx: CosignContext, notes: string[]) {
    this.#ctx = ctx;
    this.notes = notes;
    this.fingerprint = fingerprintOf(ctx.mode, ctx.trust);
  }

  async verify(target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome> {
    const { registry } = target;
    const digest = target.descriptor.digest;
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
      throw new Error(`cosign verification needs a sha256 digest, got '${digest}'`);
    }
    const ref = `${registry.registry}/${registry.repository}@${digest}`;
    const max = opts.maxSignatures > 0 ? opts.maxSignatures : DEFAULT_MAX_SIGNATURES;
    const now = opts.now ?? new Date();
    const log = opts.log;
    const attempts: SignatureAttempt[] = [];
    const warnings: string[] = [];
    const abortCheck = (): void => opts.signal?.throwIfAborted();

    const pass = (signature: string, res: SignatureResult, extra: Record<string, unknown>): VerificationOutcome => {
      attempts.push({ signature });
      return {
        status: 'verified',
        message: describe(res),
        details: {
          provider: 'cosign',
          mode: this.#ctx.mode.kind,
          format: res.format,
          signature,
          trustedRoot: this.#ctx.trust.source,
          ...(res.key ? { key: res.key } : {}),
          ...(res.identity ? { identity: res.identity } : {}),
          ...(res.tlog ? { rekor: { ...res.tlog, integratedTimeISO: new Date(res.tlog.integratedTime * 1000).toISOString() } } : {}),
          ...(res.signingTime ? { signingTime: res.signingTime } : {}),
          ...extra,
        },
        warnings,
        attempts,
      };
    };

    // 1. cosign v3 Sigstore bundles (OCI 1.1 referrers).
    let bundleDiscoveryError: unknown;
    let bundles: Awaited<ReturnType<typeof discoverBundles>> = [];
    try {
      bundles = await discoverBundles(registry, digest);
    } catch (err) {
      bundleDiscoveryError = err;
      warnings.push(`bundle discovery failed, falling back to the .sig tag: ${errorText(err)}`);
      log?.warn({ err, ref }, 'cosign bundle discovery failed; trying legacy .sig');
    }
    for (const desc of bundles) {
      if (attempts.length >= max) break;
      abortCheck();
      try {
        const bytes = await loadBundle(registry, desc, digest);
        const res = verifyOciBundle(bytes, digest, this.#ctx);
        return pass(desc.digest, res, { predicateType: res.predicateType });
      } catch (err) {
        if (!(err instanceof CheckFailure)) throw err;
        log?.debug({ signature: desc.digest, code: err.code, msg: err.message }, 'cosign bundle rejected');
        attempts.push({ signature: desc.digest, failure: err.toFailure() });
      }
    }

    // 2. Legacy `sha256-<hex>.sig` simple-signing layers.
    if (attempts.length < max) {
      abortCheck();
      let legacy: Awaited<ReturnType<typeof discoverLegacy>> = null;
      try {
        legacy = await discoverLegacy(registry, digest);
      } catch (err) {
        if (!(err instanceof CheckFailure)) throw err;
        attempts.push({ signature: signatureTag(digest), failure: err.toFailure() });
      }
      if (legacy === null && attempts.length === 0 && bundleDiscoveryError !== undefined) throw bundleDiscoveryError;
      if (legacy) {
        for (const [i, layer] of legacy.layers.entries()) {
          if (attempts.length >= max) break;
          abortCheck();
          const signature = `${legacy.manifestDigest} layer ${i + 1}`;
          try {
            const res = await verifyLegacyLayer(registry, layer, digest, this.#ctx, now);
            return pass(signature, res, { signatureManifest: legacy.manifestDigest, payload: layer.digest });
          } catch (err) {
            if (!(err instanceof CheckFailure)) throw err;
            log?.debug({ signature, code: err.code, msg: err.message }, 'cosign signature rejected');
            attempts.push({ signature, failure: err.toFailure() });
          }
        }
      }
    }
    return failed(ref, attempts, warnings);
  }
}

async function prepare(config: VerifyConfig): Promise<PreparedVerifier> {
  if (config.provider !== 'cosign') {
    throw new VerifyConfigError('wrong-provider', `cosign verifier cannot prepare provider '${config.provider}'`);
  }
  const notes: string[] = [];
  const trust = loadTrustRoot(config);
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
    try {
      mode = { kind: 'keyless', rules: compileRules(rules) };
    } catch (err) {
      throw new VerifyConfigError('invalid-identity', errorText(err));
    }
    if (trust.material.certificateAuthorities.length === 0) {
      throw new VerifyConfigError('invalid-trusted-root', `${trust.source}: no certificate authorities for keyless verification`);
    }
    notes.push(`keyless: certificates must chain to ${trust.source}; identity regular expressions are unanchored (as in cosign): write ^…$`);
  }
  return new CosignVerifier({ mode, trust }, notes);
}

export const cosignProvider: Provider = { name: 'cosign', prepare };
