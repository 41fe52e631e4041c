// COSE_Sign1 Notary Project envelopes, as notation-core-go signature/cose with go-cose v1.3 reads them.
//
// Decoding uses a small strict CBOR reader (definite lengths only, no duplicate map keys, tags kept as
// tags) because go-cose rejects what a lenient decoder would accept, and notation needs to know whether a
// time is CBOR tag 1 (a generic decoder would turn tag 0 and tag 1 alike into a Date). The
// Sig_structure is encoded with cborg (deterministic, pure JS).

import { encode as cborEncode } from 'cborg';
import { LimitError, type Limits } from '../../api/limits.ts';
import { VerificationError } from '../errors.ts';
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
  validateCommon,
  verifyPrimitive,
  type Algorithm,
  type EnvelopeContent,
} from './envelope.ts';

export class CborTag {
  readonly tag: number;
  readonly value: CborValue;
  constructor(tag: number, value: CborValue) {
    this.tag = tag;
    this.value = value;
  }
}
export type CborValue = number | bigint | string | Buffer | boolean | null | undefined | CborValue[] | Map<CborKey, CborValue> | CborTag;
type CborKey = number | bigint | string;

/** Strict CBOR decode of exactly one item filling `buf`, nested at most `maxDepth` levels (LimitError). */
export function decodeCbor(buf: Buffer, maxDepth: number): CborValue {
  let pos = 0;
  const fail = (m: string): never => {
    throw new Error(`cbor: ${m} at byte ${pos}`);
  };
  const readArg = (ai: number): number | bigint => {
    if (ai < 24) return ai;
    const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : fail(ai === 31 ? 'indefinite length is not allowed' : 'invalid additional information');
    if (pos + (n as number) > buf.length) fail('unexpected end of data');
    let v: number | bigint;
    if (n === 8) {
      v = buf.readBigUInt64BE(pos);
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) v = Number(v);
    } else v = buf.readUIntBE(pos, n as number);
    pos += n as number;
    return v;
  };
  const len = (ai: number): number => {
    const v = readArg(ai);
    if (typeof v === 'bigint' || v > buf.length) fail('length too large');
    return v as number;
  };
  const item = (depth: number): CborValue => {
    if (depth > maxDepth) throw new LimitError('maxCBORDepth', `CBOR nests deeper than ${maxDepth} levels`);
    if (pos >= buf.length) fail('unexpected end of data');
    const ib = buf[pos++]!;
    const mt = ib >> 5;
    const ai = ib & 0x1f;
    switch (mt) {
      case 0:
        return readArg(ai);
      case 1: {
        const v = readArg(ai);
        return typeof v === 'bigint' ? -1n - v : -1 - v;
      }
      case 2: {
        const n = len(ai);
        if (pos + n > buf.length) fail('unexpected end of data');
        const b = Buffer.from(buf.subarray(pos, pos + n));
        pos += n;
        return b;
      }
      case 3: {
        const n = len(ai);
        if (pos + n > buf.length) fail('unexpected end of data');
        const b = buf.subarray(pos, pos + n);
        pos += n;
        const s = new TextDecoder('utf-8', { fatal: true });
        try {
          return s.decode(b);
        } catch {
          return fail('invalid UTF-8 text string');
        }
      }
      case 4: {
        const n = len(ai);
        const arr: CborValue[] = [];
        for (let i = 0; i < n; i++) arr.push(item(depth + 1));
        return arr;
      }
      case 5: {
        const n = len(ai);
        const m = new Map<CborKey, CborValue>();
        for (let i = 0; i < n; i++) {
          const k = item(depth + 1);
          if (typeof k !== 'number' && typeof k !== 'bigint' && typeof k !== 'string') fail('unsupported map key type');
          if (m.has(k as CborKey)) fail('duplicate map key');
          m.set(k as CborKey, item(depth + 1));
        }
        return m;
      }
      case 6: {
        const t = readArg(ai);
        return new CborTag(Number(t), item(depth + 1));
      }
      default: {
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        if (ai === 23) return undefined;
        if (ai === 25) {
          const v = buf.readUInt16BE(pos);
          pos += 2;
          const e = (v >> 10) & 0x1f;
          const f = v & 0x3ff;
          const s = v & 0x8000 ? -1 : 1;
          return e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
        }
        if (ai === 26) {
          const v = buf.readFloatBE(pos);
          pos += 4;
          return v;
        }
        if (ai === 27) {
          const v = buf.readDoubleBE(pos);
          pos += 8;
          return v;
        }
        return fail('unsupported simple value');
      }
    }
  };
  const v = item(0);
  if (pos !== buf.length) fail('extraneous data');
  return v;
}

const COSE_ALGS: Record<number, Algorithm> = { [-37]: 'PS256', [-38]: 'PS384', [-39]: 'PS512', [-7]: 'ES256', [-35]: 'ES384', [-36]: 'ES512' };
const KNOWN_PROTECTED = new Set<CborKey>([1, 2, 3, H_SIGNING_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY, H_PLUGIN, H_PLUGIN_MIN_VERSION]);


/** Sig_structure for COSE_Sign1: ["Signature1", body_protected, external_aad = h'', payload]. */
export function coseToBeSigned(protectedBytes: Buffer, payload: Buffer): Buffer {
  return Buffer.from(cborEncode(['Signature1', new Uint8Array(protectedBytes), new Uint8Array(0), new Uint8Array(payload)]));
}

function epochTime(v: CborValue | undefined, name: string): Date | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof CborTag) || v.tag !== 1) throw new VerificationError('integrity', `header "${name}" must be a CBOR tag 1 (epoch seconds) time`);
  const s = v.value;
  if (typeof s !== 'number' || !Number.isInteger(s)) throw new VerificationError('integrity', `header "${name}" must be an integer number of seconds`);
  return new Date(s * 1000);
}

/**
 * Verifies a COSE_Sign1 envelope's integrity (signature by the leaf key, headers, certificate chain) and
 * returns its content. Throws VerificationError (`envelope-invalid` or `integrity`) or a budget's LimitError.
 */
export function verifyCOSEEnvelope(blob: Buffer, limits: Limits): EnvelopeContent {
  let top: CborValue;
  try {
    top = decodeCbor(blob, limits.maxCBORDepth);
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw new VerificationError('envelope-invalid', `signature envelope is not valid CBOR: ${(e as Error).message}`);
  }
  if (!(top instanceof CborTag) || top.tag !== 18) throw new VerificationError('envelope-invalid', 'signature envelope is not a tagged COSE_Sign1 message (CBOR tag 18)');
  const arr = top.value;
  if (!Array.isArray(arr) || arr.length !== 4) throw new VerificationError('envelope-invalid', 'COSE_Sign1 must be an array of 4 elements');
  const [protBytes, unprot, payload, signature] = arr;
  if (!Buffer.isBuffer(protBytes) || !(unprot instanceof Map) || !Buffer.isBuffer(payload) || !Buffer.isBuffer(signature)) {
    throw new VerificationError('envelope-invalid', 'COSE_Sign1 elements must be [bstr protected, map unprotected, bstr payload, bstr signature]');
  }
  let prot: Map<CborKey, CborValue>;
  try {
    const p = protBytes.length === 0 ? new Map() : decodeCbor(protBytes, limits.maxCBORDepth);
    if (!(p instanceof Map)) throw new Error('protected header is not a map');
    prot = p;
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw new VerificationError('envelope-invalid', `invalid COSE protected header: ${(e as Error).message}`);
  }
  for (const k of unprot.keys()) {
    if (prot.has(k)) throw new VerificationError('envelope-invalid', `COSE header label ${String(k)} is present in both protected and unprotected headers`);
  }
  if (signature.length === 0) throw new VerificationError('integrity', 'signature is missing');

  const x5chain = unprot.get(33);
  if (!Array.isArray(x5chain) || x5chain.length === 0 || !x5chain.every((c) => Buffer.isBuffer(c))) {
    throw new VerificationError('integrity', 'certificate chain is not present: unprotected header x5chain (33) must be an array of certificates');
  }
  if (x5chain.length > limits.maxCertificates) throw new LimitError('maxCertificates', `the signature's certificate chain (x5chain) has ${x5chain.length} certificates, more than ${limits.maxCertificates}`);
  const certs: Cert[] = (x5chain as Buffer[]).map((c, i) => {
    try {
      return parseCertificate(c, limits);
    } catch (e) {
      if (e instanceof LimitError) throw e;
      throw new VerificationError('integrity', `malformed leaf certificate or certificate chain: x5chain[${i}]: ${(e as Error).message}`);
    }
  });

  const algLabel = prot.get(1);
  const alg = typeof algLabel === 'number' ? COSE_ALGS[algLabel] : undefined;
  if (!alg) throw new VerificationError('integrity', `signature algorithm ${String(algLabel)} is not supported`);
  const expected = algorithmForCert(certs[0]!);
  if (expected !== alg) {
    throw new VerificationError('integrity', `mismatch between signature algorithm derived from signing certificate (${expected}) and signing algorithm specified (${alg})`);
  }
  if (!verifyPrimitive(alg, certs[0]!, coseToBeSigned(protBytes, payload), signature, 'hash')) {
    throw new VerificationError('integrity', 'signature is invalid. Error: verification error (the envelope was modified or was not signed by the leaf certificate key)');
  }

  const crit = prot.get(2);
  if (crit !== undefined && (!Array.isArray(crit) || !crit.every((c) => typeof c === 'string' || typeof c === 'number'))) {
    throw new VerificationError('integrity', 'crit header (2) must be an array of labels');
  }
  const cty = prot.get(3);
  if (typeof cty !== 'string') throw new VerificationError('integrity', 'content type (3) header must be present and a text string');
  const scheme = prot.get(H_SIGNING_SCHEME);
  if (!isSigningScheme(scheme)) throw new VerificationError('integrity', `signing scheme ${JSON.stringify(scheme)} is not supported`);
  const tstr = (m: Map<CborKey, CborValue>, k: string): string | undefined => {
    const v = m.get(k);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new VerificationError('integrity', `header "${k}" must be a text string`);
    return v;
  };
  const c: EnvelopeContent = { format: 'COSE', payload, contentType: cty, signingScheme: scheme, certs, alg, signature, extendedAttributes: [], critical: (crit as (string | number)[] | undefined) ?? [] };
  const st = epochTime(prot.get(H_SIGNING_TIME), H_SIGNING_TIME);
  if (st) c.signingTime = st;
  const ast = epochTime(prot.get(H_AUTHENTIC_SIGNING_TIME), H_AUTHENTIC_SIGNING_TIME);
  if (ast) c.authenticSigningTime = ast;
  const exp = epochTime(prot.get(H_EXPIRY), H_EXPIRY);
  if (exp) c.expiry = exp;
  const plugin = tstr(prot, H_PLUGIN);
  if (plugin !== undefined) c.verificationPlugin = plugin;
  const pmin = tstr(prot, H_PLUGIN_MIN_VERSION);
  if (pmin !== undefined) c.verificationPluginMinVersion = pmin;
  const critList = (crit as (string | number)[] | undefined) ?? [];
  for (const [k, v] of prot) {
    if (!KNOWN_PROTECTED.has(k)) c.extendedAttributes.push({ key: typeof k === 'bigint' ? Number(k) : k, value: v, critical: critList.includes(k as string | number) });
  }
  const ts = unprot.get(H_TIMESTAMP);
  if (ts !== undefined) {
    if (!Buffer.isBuffer(ts)) throw new VerificationError('integrity', 'timestamp countersignature must be a byte string');
    c.timestampToken = ts;
  }
  const agent = unprot.get(H_SIGNING_AGENT);
  if (typeof agent === 'string') c.signingAgent = agent;
  validateCommon(c, critList, (k) => prot.has(k) || (/^-?\d+$/.test(k) && prot.has(Number(k))));
  return c;
}
