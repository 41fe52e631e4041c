// Notation signature verification, in the order notation-go's verifier applies it:
// integrity → (plugin) → authenticity → trusted identity → expiry → authentic timestamp → revocation,
// then the payload's targetArtifact against the resolved descriptor. Each check yields a typed Failure;
// the verification level decides whether it is enforced (fails the signature) or logged (a warning).

import type { Logger } from 'pino';
import { parseJSON } from '../../util/json.ts';
import { LimitError, type Limits } from '../../api/limits.ts';
import type { Descriptor } from '../../oci/types.ts';
import { VerificationError } from '../errors.ts';
import type { Failure, FailureCode } from '../types.ts';
import { formatRFC1123Z, type Cert } from '../x509/certs.ts';
import { checkChainRevocation, type HttpFetcher, type RevocationCache } from '../x509/revocation.ts';
import { parseTimestampToken, verifyTimestampToken, type TimestampResult } from '../x509/timestamp.ts';
import { verifyCOSEEnvelope } from './cose.ts';
import { H_PLUGIN, H_PLUGIN_MIN_VERSION, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, PAYLOAD_CONTENT_TYPE, type EnvelopeContent } from './envelope.ts';
import { verifyJWSEnvelope } from './jws.ts';
import { isSubsetDN, parseDistinguishedName, type TrustPolicyStatement, type ValidationType, type VerificationLevel } from './trustpolicy.ts';
import { certificatesFor, TrustStoreError, type StoreCert, type TrustStores } from './truststore.ts';

/** Trust material and HTTP access, fixed at prepare time. */
export interface VerifierContext {
  stores: TrustStores;
  fetch?: HttpFetcher;
  revocationCache?: RevocationCache;
  revocationTimeoutMs?: number;
}

/** What every signature of one verification is checked against. */
export interface SignatureContext {
  ctx: VerifierContext;
  statement: TrustPolicyStatement;
  level: VerificationLevel;
  /** The resolved descriptor of the artifact being verified. */
  target: Descriptor;
  now: Date;
  limits: Limits;
  signal?: AbortSignal;
  log?: Logger;
}

export interface SignatureResult {
  /** First enforced failure; undefined when the signature passed. */
  failure?: Failure;
  /** Failures logged at this level. */
  warnings: Failure[];
  /** What was established (format, scheme, signer, trusted cert, times…). */
  details: Record<string, unknown>;
  /** The trust-store certificate that matched, when the chain reached one. */
  trusted?: StoreCert;
  /** `audited` when authenticity or the trusted identity failed and the level only logs it. */
  authenticity: 'established' | 'audited';
}

const PREFIX: Partial<Record<FailureCode, string>> = {
  integrity: 'integrity validation failed',
  'envelope-invalid': 'integrity validation failed',
  authenticity: 'authenticity validation failed',
  'trusted-identity': 'trusted identity validation failed',
  expiry: 'expiry validation failed',
  'authentic-timestamp': 'authenticTimestamp validation failed',
  revocation: 'revocation validation failed',
  'target-mismatch': 'signed target mismatch',
};

/** A notation failure, prefixed with the validation it belongs to as notation-go words it. */
export function failure(code: FailureCode, reason: string): Failure {
  const prefix = PREFIX[code];
  return { code, message: prefix ? `${prefix}: ${reason}` : reason };
}

/** A budget hit during one validation: code `limit-exceeded`, the validation's prefix, the budget's message. */
function budget(validation: FailureCode, e: LimitError, context = ''): Failure {
  return { code: 'limit-exceeded', message: `${failure(validation, '').message}${context}${e.message}` };
}

export function notationError(code: FailureCode, reason: string): VerificationError {
  const f = failure(code, reason);
  return new VerificationError(f.code, f.message);
}

// semver.org's regular expression (notation-go checks verificationPluginMinVersion with it).
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/**
 * notation-go `getVerificationPlugin` / `getVerificationPluginMinVersion`: a plugin attribute that is
 * present must be critical and non-empty; a named plugin must then be installed. We run no plugins, so
 * any signature naming one fails (whatever the level), with notation-go's words.
 */
function pluginProblem(env: EnvelopeContent): string | undefined {
  if (env.verificationPlugin === undefined) return undefined;
  const critical = (key: string) => env.critical.includes(key);
  if (!critical(H_PLUGIN)) return `${H_PLUGIN} is not a critical Extended attribute`;
  if (env.verificationPlugin.trim() === '') return `${H_PLUGIN} from extended attribute is an empty string`;
  let min = '';
  if (env.verificationPluginMinVersion !== undefined) {
    const v = env.verificationPluginMinVersion;
    const err = !critical(H_PLUGIN_MIN_VERSION)
      ? `${H_PLUGIN_MIN_VERSION} is not a critical Extended attribute`
      : v.trim() === ''
        ? `${H_PLUGIN_MIN_VERSION} from extended attribute is an empty string`
        : !SEMVER.test(v)
          ? `${H_PLUGIN_MIN_VERSION} from extended attribute is not a valid SemVer`
          : undefined;
    if (err) return `error while getting plugin minimum version, error: ${err}`;
    min = ` (minimum version ${v})`;
  }
  return `error while locating the verification plugin "${env.verificationPlugin}"${min}, make sure the plugin is installed successfully before verifying the signature. error: verification plugins are not supported by this controller`;
}

/**
 * Runs every check on one signature envelope. Signature problems, budget hits included (code
 * `limit-exceeded`, enforced at every level), are results; only an abort propagates.
 */
export async function verifySignature(input: SignatureContext, mediaType: string, envelope: Buffer): Promise<SignatureResult> {
  const { statement, level, now, ctx } = input;
  const warnings: Failure[] = [];
  const details: Record<string, unknown> = { policyStatement: statement.name, level: level.name };
  const failed = (f: Failure): SignatureResult => ({ failure: f, warnings, details, authenticity: 'audited' });
  /** Applies the level's action: enforce → stop with this failure; log → warning; skip → ignore. */
  const outcome = (type: ValidationType, f: Failure): Failure | undefined => {
    const action = level.enforcement[type];
    if (action === 'enforce') return f;
    if (action === 'log') warnings.push(f);
    return undefined;
  };

  // 1. Integrity.
  let env: EnvelopeContent;
  try {
    if (mediaType === MEDIA_TYPE_JWS) env = verifyJWSEnvelope(envelope, input.limits);
    else if (mediaType === MEDIA_TYPE_COSE) env = verifyCOSEEnvelope(envelope, input.limits);
    else return failed(failure('envelope-invalid', `signature envelope format with media type "${mediaType}" is not supported`));
  } catch (e) {
    if (e instanceof LimitError) return failed(budget('integrity', e));
    if (e instanceof VerificationError) return failed(failure(e.code, e.message));
    return failed(failure('integrity', (e as Error).message));
  }
  if (env.contentType !== PAYLOAD_CONTENT_TYPE) {
    return failed(failure('integrity', `payload content type "${env.contentType}" is not supported`));
  }
  const leaf = env.certs[0]!;
  Object.assign(details, {
    format: env.format,
    signingScheme: env.signingScheme,
    algorithm: env.alg,
    leafSubject: leaf.subject,
    leafSHA256: leaf.sha256,
    ...(env.signingTime ? { signingTime: env.signingTime.toISOString() } : {}),
    ...(env.authenticSigningTime ? { authenticSigningTime: env.authenticSigningTime.toISOString() } : {}),
    ...(env.expiry ? { expiry: env.expiry.toISOString() } : {}),
    ...(env.signingAgent ? { signingAgent: env.signingAgent } : {}),
  });

  // 2. Verification plugin.
  const plugin = pluginProblem(env);
  if (plugin) return failed(failure('plugin-required', plugin));

  // 3. Authenticity: some certificate of the chain equals a trust-store certificate of the scheme's type.
  const storeType = env.signingScheme === 'notary.x509' ? 'ca' : 'signingAuthority';
  let trusted: StoreCert | undefined;
  let authFailed = false;
  {
    let f: Failure | undefined;
    try {
      const certs = certificatesFor(ctx.stores, statement.trustStores, storeType);
      if (certs.length === 0) {
        f = failure('authenticity', `no trusted certificates are found to verify authenticity: the trust policy statement "${statement.name}" names no "${storeType}" trust store`);
      } else {
        for (const c of env.certs) {
          trusted = certs.find((t) => t.cert.der.equals(c.der));
          if (trusted) break;
        }
        if (!trusted) f = failure('authenticity', `the signature's certificate chain does not contain any trusted certificate (trust stores of type "${storeType}" in statement "${statement.name}")`);
      }
    } catch (e) {
      f = failure('authenticity', e instanceof TrustStoreError ? e.message : `authenticity verification failed with error : ${(e as Error).message}`);
    }
    if (f) {
      authFailed = true;
      const enforced = outcome('authenticity', f);
      if (enforced) return failed(enforced);
    }
  }
  if (trusted) {
    details.trustedCertificate = { sha256: trusted.cert.sha256, subject: trusted.cert.subject, secretKey: trusted.key, trustedForEveryStore: trusted.global };
  }

  // 4. Trusted identity (leaf subject), with the authenticity action.
  {
    const err = checkTrustedIdentities(leaf, statement);
    if (err) {
      const enforced = outcome('authenticity', failure('trusted-identity', err));
      if (enforced) return failed(enforced);
      authFailed = true;
    }
  }
  const authenticity = authFailed ? 'audited' : 'established';

  // 5. Expiry.
  if (env.expiry && !(now < env.expiry)) {
    const enforced = outcome('expiry', failure('expiry', `digital signature has expired on "${formatRFC1123Z(env.expiry)}"`));
    if (enforced) return failed(enforced);
  }

  // 6. Authentic timestamp. A budget hit while checking it fails the signature whatever the level.
  {
    let r: Awaited<ReturnType<typeof authenticTimestamp>>;
    try {
      r = await authenticTimestamp(env, input);
    } catch (e) {
      if (e instanceof LimitError) return failed(budget('authentic-timestamp', e, 'failed to verify the timestamp countersignature with error: '));
      throw e;
    }
    if (r.timestamp) {
      details.timestamp = {
        genTime: r.timestamp.genTime.toISOString(),
        accuracyMs: r.timestamp.accuracyMs,
        tsaSubject: r.timestamp.signer.subject,
        tsaRootSHA256: r.timestamp.chain[r.timestamp.chain.length - 1]!.sha256,
      };
    }
    if (r.error) {
      const enforced = outcome('authenticTimestamp', failure('authentic-timestamp', r.error));
      if (enforced) return failed(enforced);
    }
  }

  // 7. Revocation of the signing chain, only when it reached a trust anchor: the OCSP and CRL URLs of an
  // untrusted chain are the signer's choice, and fetching them (audit level) would let anyone make the
  // controller call any URL.
  if (level.enforcement.revocation !== 'skip') {
    if (!trusted) {
      details.revocation = 'not checked: the certificate chain is not trusted';
    } else {
      const rev = await checkChainRevocation(env.certs, {
        ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
        ...(ctx.revocationCache ? { cache: ctx.revocationCache } : {}),
        timeoutMs: ctx.revocationTimeoutMs ?? 2000,
        now,
        ...(env.signingScheme === 'notary.x509.signingAuthority' && env.authenticSigningTime ? { signingTime: env.authenticSigningTime } : {}),
        ...(input.signal ? { signal: input.signal } : {}),
      });
      details.revocation = rev.certs.map((c) => ({ subject: c.subject, status: c.status, method: c.method }));
      if (rev.status !== 'ok') {
        const enforced = outcome('revocation', failure('revocation', `signing ${rev.message ?? 'certificate revocation status is unknown'}`));
        if (enforced) return failed(enforced);
      }
    }
  }

  // 8. The payload must name the artifact being verified (always enforced).
  let target: Record<string, unknown>;
  try {
    const p = parseJSONPayload(env.payload, input.limits);
    if (!p || typeof p !== 'object' || !p.targetArtifact || typeof p.targetArtifact !== 'object') throw new Error('missing targetArtifact');
    target = p.targetArtifact as Record<string, unknown>;
  } catch (e) {
    if (e instanceof LimitError) return failed(budget('envelope-invalid', e));
    return failed(failure('envelope-invalid', `failed to unmarshal the payload content in the signature blob to envelope.Payload: ${(e as Error).message}`));
  }
  const want = input.target;
  if (target.mediaType !== want.mediaType || target.digest !== want.digest || target.size !== want.size) {
    return failed(
      failure(
        'target-mismatch',
        `content descriptor mismatch: the signature is for ${String(target.mediaType)} ${String(target.digest)} (${String(target.size)} bytes), not for ${want.mediaType} ${want.digest} (${want.size} bytes)`,
      ),
    );
  }
  return { warnings, details, authenticity, ...(trusted ? { trusted } : {}) };
}

function parseJSONPayload(payload: Buffer, limits: Limits): { targetArtifact?: unknown } {
  return parseJSON(payload, 'signature payload', limits.maxJSONDepth) as { targetArtifact?: unknown };
}

/** notation-go `verifyX509TrustedIdentities`: an error message, or undefined when the leaf matches. */
export function checkTrustedIdentities(leaf: Cert, statement: TrustPolicyStatement): string | undefined {
  if (statement.trustedIdentities.includes('*')) return undefined;
  const ids: ReadonlyMap<string, string>[] = [];
  for (const identity of statement.trustedIdentities) {
    const i = identity.indexOf(':');
    if (i < 0) return `trust policy statement "${statement.name}" has trusted identity "${identity}" missing separator`;
    if (identity.slice(0, i) !== 'x509.subject') continue;
    const v = identity.slice(i + 1);
    if (!v) return `trust policy statement "${statement.name}" has trusted identity "${identity}" without an identity value`;
    try {
      ids.push(parseDistinguishedName(v));
    } catch (e) {
      return (e as Error).message;
    }
  }
  if (ids.length === 0) return `no x509 trusted identities are configured in the trust policy "${statement.name}"`;
  let leafDN: ReadonlyMap<string, string>;
  try {
    leafDN = parseDistinguishedName(leaf.subject);
  } catch (e) {
    return `error while parsing the certificate subject from the digital signature. error : ${JSON.stringify((e as Error).message)}`;
  }
  if (ids.some((id) => isSubsetDN(id, leafDN))) return undefined;
  const shown = ids.map((m) => `map[${[...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}:${v}`).join(' ')}]`).join(' ');
  return `signing certificate from the digital signature does not match the X.509 trusted identities [${shown}] defined in the trust policy "${statement.name}" (signing certificate subject: "${leaf.subject}")`;
}

function validNow(chain: Cert[], now: Date): string | undefined {
  for (const c of chain) {
    if (now < c.notBefore) return `verification time is before certificate "${c.subject}" validity period, it will be valid from "${formatRFC1123Z(c.notBefore)}"`;
    if (now > c.notAfter) return `verification time is after certificate "${c.subject}" validity period, it was expired at "${formatRFC1123Z(c.notAfter)}"`;
  }
  return undefined;
}

async function authenticTimestamp(env: EnvelopeContent, input: SignatureContext): Promise<{ error?: string; timestamp?: TimestampResult }> {
  const { statement, now, ctx, limits } = input;
  if (env.signingScheme === 'notary.x509.signingAuthority') {
    const t = env.authenticSigningTime!;
    for (const c of env.certs) {
      if (t < c.notBefore || t > c.notAfter) {
        return { error: `certificate "${c.subject}" was not valid when the digital signature was produced at "${formatRFC1123Z(t)}"` };
      }
    }
    return {};
  }
  const hasTSA = statement.trustStores.some((s) => s.startsWith('tsa:'));
  const vt = statement.signatureVerification.verifyTimestamp ?? '';
  const perform = hasTSA && (vt === '' || vt === 'always' || (vt === 'afterCertExpiry' && env.certs.some((c) => now > c.notAfter)));
  if (!perform) {
    const err = validNow(env.certs, now);
    return err ? { error: err } : {};
  }
  if (!env.timestampToken) return { error: 'no timestamp countersignature was found in the signature envelope' };
  let token;
  try {
    token = parseTimestampToken(env.timestampToken, limits);
  } catch (e) {
    if (e instanceof LimitError) throw e;
    return { error: `failed to parse timestamp countersignature with error: ${(e as Error).message}` };
  }
  let roots: Cert[];
  try {
    roots = certificatesFor(ctx.stores, statement.trustStores, 'tsa').map((c) => c.cert);
  } catch (e) {
    return { error: `failed to load tsa trust store with error: ${(e as Error).message}` };
  }
  let ts: TimestampResult;
  try {
    ts = await verifyTimestampToken(token, env.signature, roots, { limits, ...(input.signal ? { signal: input.signal } : {}) });
  } catch (e) {
    if (e instanceof LimitError) throw e;
    input.signal?.throwIfAborted();
    return { error: `failed to verify the timestamp countersignature with error: ${(e as Error).message}` };
  }
  for (const c of env.certs) {
    if (ts.lower < c.notBefore) {
      return { timestamp: ts, error: `timestamp can be before certificate "${c.subject}" validity period, it will be valid from "${formatRFC1123Z(c.notBefore)}"` };
    }
    if (ts.upper > c.notAfter) {
      return { timestamp: ts, error: `timestamp can be after certificate "${c.subject}" validity period, it was expired at "${formatRFC1123Z(c.notAfter)}"` };
    }
  }
  const rev = await checkChainRevocation(ts.chain, {
    ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
    ...(ctx.revocationCache ? { cache: ctx.revocationCache } : {}),
    timeoutMs: ctx.revocationTimeoutMs ?? 2000,
    now,
    ...(input.signal ? { signal: input.signal } : {}),
  });
  if (rev.status !== 'ok') {
    return { timestamp: ts, error: `failed to check timestamping certificate chain revocation: timestamping ${rev.message ?? 'certificate revocation status is unknown'}` };
  }
  return { timestamp: ts };
}
