// JWS (flattened JSON serialization) Notary Project envelopes: decode, verify the signature with the leaf
// key and validate the headers and the certificate chain, as notation-core-go signature/jws does.

import { LimitError, type Limits } from '../../api/limits.ts';
import { VerificationError } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import { parseCertificate, type Cert } from '../x509/certs.ts';
import {
  algorithmForCert,
  H_AUTHENTIC_SIGNING_TIME,
  H_EXPIRY,
  H_PLUGIN,
  H_PLUGIN_MIN_VERSION,
  H_SIGNING_AGENT,
  H_SIGNING_SCHEME,
  H_SIGNING_TIME,
  H_TIMESTAMP,
  isSigningScheme,
  parseRFC3339,
  validateCommon,
  verifyPrimitive,
  type Algorithm,
  type EnvelopeContent,
} from './envelope.ts';

const ALGS: Algorithm[] = ['PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
const KNOWN = new Set(['alg', 'cty', 'crit', H_SIGNING_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY, H_PLUGIN, H_PLUGIN_MIN_VERSION]);

/** Go base64.RawURLEncoding (no padding; '=' is an illegal byte). */
function rawURL(s: unknown, what: string): Buffer {
  if (typeof s !== 'string') throw new VerificationError('envelope-invalid', `${what} must be a string`);
  const bad = s.search(/[^A-Za-z0-9_-]/);
  if (bad >= 0) throw new VerificationError('integrity', `signature is invalid. Error: illegal base64 data at input byte ${bad}`);
  if (s.length % 4 === 1) throw new VerificationError('integrity', `signature is invalid. Error: illegal base64 data at input byte ${s.length - 1}`);
  return Buffer.from(s, 'base64url');
}

/** Go base64.StdEncoding (padded). */
function stdB64(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
    throw new VerificationError('integrity', `${what} is not valid base64`);
  }
  return Buffer.from(s, 'base64');
}

function ci(obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  const l = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === l) return obj[k];
  return undefined;
}

/**
 * Verifies a JWS envelope's integrity (signature by the leaf key, headers, certificate chain) and returns
 * its content. Throws VerificationError (`envelope-invalid` or `integrity`) or a budget's LimitError.
 */
export function verifyJWSEnvelope(blob: Buffer, limits: Limits): EnvelopeContent {
  let env: Record<string, unknown>;
  try {
    const v = parseJSON(blob, 'JWS envelope', limits.maxJSONDepth);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    env = v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw new VerificationError('envelope-invalid', `signature envelope is not valid JWS JSON: ${(e as Error).message}`);
  }
  const protectedB64 = ci(env, 'protected');
  const payloadB64 = ci(env, 'payload');
  const sigB64 = ci(env, 'signature');
  const headerRaw = ci(env, 'header');
  if (typeof protectedB64 !== 'string' || typeof payloadB64 !== 'string' || typeof sigB64 !== 'string') {
    throw new VerificationError('envelope-invalid', 'JWS envelope must have string "protected", "payload" and "signature" members (flattened JSON serialization)');
  }
  const header = (headerRaw && typeof headerRaw === 'object' && !Array.isArray(headerRaw) ? headerRaw : {}) as Record<string, unknown>;
  const payload = rawURL(payloadB64, 'payload');
  const protBytes = rawURL(protectedB64, 'protected');
  const signature = rawURL(sigB64, 'signature');
  if (signature.length === 0) throw new VerificationError('integrity', 'signature is missing');

  const x5c = ci(header, 'x5c');
  if (!Array.isArray(x5c) || x5c.length === 0) throw new VerificationError('integrity', 'certificate chain is not present');
  if (x5c.length > limits.maxCertificates) throw new LimitError('maxCertificates', `the signature's certificate chain (x5c) has ${x5c.length} certificates, more than ${limits.maxCertificates}`);
  const certs: Cert[] = x5c.map((c, i) => {
    try {
      return parseCertificate(stdB64(c, `x5c[${i}]`), limits);
    } catch (e) {
      if (e instanceof LimitError) throw e;
      throw new VerificationError('integrity', `malformed leaf certificate or certificate chain: x5c[${i}]: ${(e as Error).message}`);
    }
  });

  let prot: Record<string, unknown>;
  try {
    const v = parseJSON(protBytes, 'JWS protected header', limits.maxJSONDepth);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    prot = v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw new VerificationError('integrity', `protected header is not valid JSON: ${(e as Error).message}`);
  }
  const alg = prot.alg;
  if (typeof alg !== 'string' || !ALGS.includes(alg as Algorithm)) {
    throw new VerificationError('integrity', `signature algorithm "${String(alg)}" is not supported`);
  }
  // Cryptographic check first (golang-jwt), then the key/algorithm match.
  const signingInput = Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii');
  if (!verifyPrimitive(alg as Algorithm, certs[0]!, signingInput, signature, 'auto')) {
    throw new VerificationError('integrity', 'signature is invalid. Error: crypto verification failed (the envelope was modified or was not signed by the leaf certificate key)');
  }
  const expected = algorithmForCert(certs[0]!);
  if (expected !== alg) {
    throw new VerificationError('integrity', `mismatch between signature algorithm derived from signing certificate (${expected}) and signing algorithm specified (${alg})`);
  }

  const crit = prot.crit;
  if (crit !== undefined && (!Array.isArray(crit) || !crit.every((c) => typeof c === 'string'))) {
    throw new VerificationError('integrity', '"crit" header must be an array of strings');
  }
  const cty = prot.cty;
  if (typeof cty !== 'string') throw new VerificationError('integrity', 'missing or non-string "cty" header');
  const scheme = prot[H_SIGNING_SCHEME];
  if (!isSigningScheme(scheme)) throw new VerificationError('integrity', `signing scheme ${JSON.stringify(scheme)} is not supported`);
  const str = (k: string): string | undefined => {
    const v = prot[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new VerificationError('integrity', `header "${k}" must be a string`);
    return v;
  };
  const c: EnvelopeContent = {
    format: 'JWS',
    payload,
    contentType: cty,
    signingScheme: scheme,
    certs,
    alg: alg as Algorithm,
    signature,
    extendedAttributes: [],
    critical: (crit as string[] | undefined) ?? [],
  };
  if (prot[H_SIGNING_TIME] !== undefined) c.signingTime = parseRFC3339(prot[H_SIGNING_TIME], H_SIGNING_TIME);
  if (prot[H_AUTHENTIC_SIGNING_TIME] !== undefined) c.authenticSigningTime = parseRFC3339(prot[H_AUTHENTIC_SIGNING_TIME], H_AUTHENTIC_SIGNING_TIME);
  if (prot[H_EXPIRY] !== undefined) c.expiry = parseRFC3339(prot[H_EXPIRY], H_EXPIRY);
  const plugin = str(H_PLUGIN);
  if (plugin !== undefined) c.verificationPlugin = plugin;
  const pluginMin = str(H_PLUGIN_MIN_VERSION);
  if (pluginMin !== undefined) c.verificationPluginMinVersion = pluginMin;
  const critList = (crit as string[] | undefined) ?? [];
  for (const [k, v] of Object.entries(prot)) {
    if (!KNOWN.has(k)) c.extendedAttributes.push({ key: k, value: v, critical: critList.includes(k) });
  }
  const ts = ci(header, H_TIMESTAMP);
  if (ts !== undefined && ts !== null) c.timestampToken = stdB64(ts, 'timestamp countersignature');
  const agent = ci(header, H_SIGNING_AGENT);
  if (typeof agent === 'string') c.signingAgent = agent;
  validateCommon(c, critList, (k) => Object.hasOwn(prot, k));
  return c;
}
