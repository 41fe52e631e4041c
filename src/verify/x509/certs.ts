/**
 * Provider-neutral X.509 certificates: the one certificate type both providers use. Built on node:crypto
 * (signature checks, public keys) and pkijs/asn1js (structure, names, extensions, CMS, OCSP, CRL).
 *
 * Exported API:
 * - `parseCertificate(der, limits?)` — parse one DER certificate (throws on bad input; a certificate over
 *   the `maxCertificateSize` budget is a LimitError).
 * - `parseCertificates(data, limits?)` — every PEM `CERTIFICATE` block of `data`, or, when there is no PEM
 *   block, one or more concatenated DER certificates. Throws when nothing parses.
 * - `Cert.subject` / `Cert.issuer` — the name as Go's `pkix.Name.String()` prints it (RFC 4514 order, most
 *   specific first), which is what notation-go matches and prints; strings decoded exactly (names.ts).
 * - `isSelfSigned(cert)` — the signature verifies with the certificate's own key.
 * - `isSelfIssued(cert)` — raw subject == raw issuer.
 * - `issuanceError(child, parent)` — why `child` is not issued by `parent` (name chaining and signature;
 *   SHA-1 signatures are refused, as Go's `CheckSignatureFrom` does), or undefined.
 * - `certExtensions(cert)` — basicConstraints / keyUsage / extKeyUsage / AIA OCSP / CRL DP / SANs, parsed.
 * - `extensionValue(cert, oid)` — the raw extnValue of an extension.
 * - `formatRFC1123Z(date)` — Go's `time.RFC1123Z` ("Tue, 27 Jun 2023 06:10:00 +0000") for messages.
 * - `KeyUsage`, `EKU` constants.
 */
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { LimitError, type Limits } from '../../api/limits.ts';
import { goNameString } from './names.ts';

export interface Cert {
  /** DER bytes. */
  readonly der: Buffer;
  readonly node: X509Certificate;
  readonly pkijs: pkijs.Certificate;
  /** Subject as Go's `pkix.Name.String()`. */
  readonly subject: string;
  readonly issuer: string;
  readonly rawSubject: Buffer;
  readonly rawIssuer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Lower-case hex SHA-256 of the DER bytes. */
  readonly sha256: string;
  /** Serial number, lower-case hex without leading zero bytes. */
  readonly serialHex: string;
  /** Signature algorithm OID of the certificate itself. */
  readonly signatureAlgorithm: string;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** `parsed`: the same certificate already parsed by pkijs (inside a CMS SignedData), to skip parsing it again. */
export function parseCertificate(der: Uint8Array, limits?: Pick<Limits, 'maxCertificateSize'>, parsed?: pkijs.Certificate): Cert {
  if (limits && der.length > limits.maxCertificateSize) {
    throw new LimitError('maxCertificateSize', `a certificate of ${der.length} bytes is larger than ${limits.maxCertificateSize}`);
  }
  const buf = Buffer.from(der);
  const sha256 = createHash('sha256').update(buf).digest('hex');
  const seen = parsedCerts.get(sha256);
  if (seen) {
    // Most recently used last, so the oldest is evicted first.
    parsedCerts.delete(sha256);
    parsedCerts.set(sha256, seen);
    return seen;
  }
  const node = new X509Certificate(buf);
  let cert = parsed;
  if (!cert) {
    const asn = asn1js.fromBER(new Uint8Array(buf).buffer);
    if (asn.offset === -1) throw new Error('malformed certificate');
    cert = new pkijs.Certificate({ schema: asn.result });
  }
  const rawSubject = Buffer.from(cert.subject.valueBeforeDecode);
  const rawIssuer = Buffer.from(cert.issuer.valueBeforeDecode);
  let serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  const result: Cert = {
    der: Buffer.from(node.raw),
    node,
    pkijs: cert,
    subject: goNameString(cert.subject),
    issuer: goNameString(cert.issuer),
    rawSubject,
    rawIssuer,
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    sha256,
    serialHex: serial.toString('hex'),
    signatureAlgorithm: cert.signatureAlgorithm.algorithmId,
  };
  // Extensions are parsed now, as Go's ParseCertificate does: a certificate with a malformed one (say a
  // non-ASCII SAN) is refused here, where callers expect parse errors, not later in an identity check.
  certExtensions(result);
  parsedCerts.set(sha256, result);
  if (parsedCerts.size > ParsedCertsMax) parsedCerts.delete(parsedCerts.keys().next().value!);
  return result;
}

/**
 * Parsed certificates by the SHA-256 of their DER: the same signer's chain arrives with every
 * signature, and parsing (asn1js) was most of a verification's cost. A `Cert` is immutable.
 */
const parsedCerts = new Map<string, Cert>();
const ParsedCertsMax = 256;

/** All certificates in a PEM or DER blob (every PEM block counts; DER may be concatenated). */
export function parseCertificates(data: Uint8Array, limits?: Pick<Limits, 'maxCertificateSize'>, maxCount = Infinity): Cert[] {
  const text = Buffer.from(data).toString('latin1');
  const out: Cert[] = [];
  // Counted before parsing the next one: parsing is what costs.
  const room = () => {
    if (out.length >= maxCount) throw new LimitError('maxTrustedCertificates', `more than ${maxCount} trusted certificates`);
  };
  let sawPem = false;
  for (const m of text.matchAll(PEM_RE)) {
    sawPem = true;
    if (m[1] !== 'CERTIFICATE') continue;
    room();
    const body = (m[2] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error('invalid base64 in PEM block');
    out.push(parseCertificate(Buffer.from(body, 'base64'), limits));
  }
  if (sawPem) {
    if (out.length === 0) throw new Error('no CERTIFICATE PEM block found');
    return out;
  }
  // Concatenated DER: walk top-level SEQUENCEs.
  let rest = Buffer.from(data);
  while (rest.length > 0) {
    const len = derElementLength(rest);
    if (len <= 0 || len > rest.length) throw new Error('not a PEM or DER certificate');
    room();
    out.push(parseCertificate(rest.subarray(0, len), limits));
    rest = rest.subarray(len);
  }
  if (out.length === 0) throw new Error('no certificate found');
  return out;
}

/** Length of the DER element at the start of `b` (header + content), or -1. */
function derElementLength(b: Buffer): number {
  if (b.length < 2 || b[0] !== 0x30) return -1;
  const l0 = b[1]!;
  if (l0 < 0x80) return 2 + l0;
  const n = l0 & 0x7f;
  if (n === 0 || n > 4 || b.length < 2 + n) return -1;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return 2 + n + len;
}

// ---------------------------------------------------------------------------------------------
// Signatures and extensions

const SHA1_SIG_OIDS = new Set(['1.2.840.113549.1.1.5', '1.2.840.10045.4.1', '1.2.840.10040.4.3']);

export function isSelfIssued(cert: Cert): boolean {
  return cert.rawSubject.equals(cert.rawIssuer);
}

/**
 * The certificate's public key, made once per parsed certificate: X509Certificate#publicKey builds
 * a new KeyObject on every read, and parsed certificates are shared (cached by DER).
 */
const publicKeys = new WeakMap<Cert, KeyObject>();
export function publicKeyOf(cert: Cert): KeyObject {
  let key = publicKeys.get(cert);
  if (!key) publicKeys.set(cert, (key = cert.node.publicKey));
  return key;
}

/**
 * Issuances whose signature verified, by the parsed child and parent: a certificate's signature
 * is a function of the two certificates' bytes alone, and the same signer's chain comes with
 * every signature it makes, so each pair is checked once while both stay parsed. Only successes
 * are kept; a failing pair is checked again (chain building bounds how many checks it makes).
 */
const verifiedIssuances = new WeakMap<Cert, WeakSet<Cert>>();
function signedBy(child: Cert, parent: Cert): boolean {
  if (verifiedIssuances.get(child)?.has(parent)) return true;
  let ok = false;
  try {
    ok = child.node.verify(publicKeyOf(parent));
  } catch {
    ok = false;
  }
  if (ok) {
    let parents = verifiedIssuances.get(child);
    if (!parents) verifiedIssuances.set(child, (parents = new WeakSet()));
    parents.add(parent);
  }
  return ok;
}

/** The certificate's signature verifies with its own public key. */
export function isSelfSigned(cert: Cert): boolean {
  return signedBy(cert, cert);
}

/** Why `child` is not issued by `parent`, or undefined when it is (name chaining + signature). */
export function issuanceError(child: Cert, parent: Cert): string | undefined {
  if (!child.rawIssuer.equals(parent.rawSubject)) {
    return `issuer of certificate "${child.subject}" does not match subject of certificate "${parent.subject}"`;
  }
  if (SHA1_SIG_OIDS.has(child.signatureAlgorithm)) {
    return `certificate "${child.subject}" is signed with SHA-1, which is insecure`;
  }
  if (!signedBy(child, parent)) return `signature of certificate "${child.subject}" does not verify with the key of "${parent.subject}"`;
  return undefined;
}

export const KeyUsage = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const;

export const EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  any: '2.5.29.37.0',
} as const;

/** A subjectAltName entry (RFC 5280 4.2.1.6). IA5 names must be ASCII; otherName values are kept only as UTF8String. */
export type GeneralName =
  | { type: 'email' | 'dns' | 'uri'; value: string }
  | { type: 'ip'; value: string }
  | { type: 'otherName'; oid: string; value?: string }
  | { type: 'other'; tag: number };

export interface CertExtensions {
  basicConstraints?: { critical: boolean; ca: boolean; pathLen?: number };
  keyUsage?: { critical: boolean; usages: number };
  extKeyUsage?: { critical: boolean; usages: string[] };
  subjectAltNames: GeneralName[];
  ocspUrls: string[];
  crlUrls: string[];
  /** OIDs of critical extensions. */
  critical: string[];
}

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  crlDistributionPoints: '2.5.29.31',
  ocsp: '1.3.6.1.5.5.7.48.1',
};

const extCache = new WeakMap<Cert, CertExtensions>();

function der(bytes: Uint8Array, what: string): asn1js.AsnType {
  const a = asn1js.fromBER(new Uint8Array(bytes).buffer);
  if (a.offset === -1 || a.offset !== bytes.length) throw new Error(`malformed ${what} extension`);
  return a.result;
}

/** KeyUsage BIT STRING → flags: bit n (0 = digitalSignature, the most significant bit of the first byte) → 1 << n. */
function keyUsageFlags(v: asn1js.AsnType): number {
  if (!(v instanceof asn1js.BitString)) throw new Error('malformed keyUsage extension');
  const bytes = v.valueBlock.valueHexView;
  let flags = 0;
  for (let n = 0; n < Math.min(bytes.length * 8, 9); n++) if ((bytes[n >> 3]! >> (7 - (n & 7))) & 1) flags |= 1 << n;
  return flags;
}

function ipText(b: Uint8Array): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length === 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
    return parts.join(':');
  }
  return Buffer.from(b).toString('hex');
}

function ia5(v: asn1js.BaseBlock, what: string): string {
  const bytes = (v.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView;
  for (const c of bytes) if (c >= 0x80) throw new Error(`subjectAltName ${what} is malformed: non-ASCII byte`);
  return Buffer.from(bytes).toString('latin1');
}

/** GeneralNames of a subjectAltName extension value. */
function generalNames(v: asn1js.AsnType): GeneralName[] {
  if (!(v instanceof asn1js.Sequence)) throw new Error('malformed subjectAltName extension');
  const out: GeneralName[] = [];
  for (const gn of v.valueBlock.value) {
    const id = gn.idBlock;
    if (id.tagClass !== 3) throw new Error('malformed subjectAltName extension');
    switch (id.tagNumber) {
      case 0: {
        // otherName ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY }
        const parts = (gn as asn1js.Constructed).valueBlock.value ?? [];
        const oid = parts[0];
        if (!(oid instanceof asn1js.ObjectIdentifier)) throw new Error('malformed subjectAltName otherName');
        const inner = (parts[1] as asn1js.Constructed | undefined)?.valueBlock.value?.[0];
        const value = inner instanceof asn1js.Utf8String ? new TextDecoder('utf-8', { fatal: true }).decode(inner.valueBlock.valueHexView) : undefined;
        out.push({ type: 'otherName', oid: oid.valueBlock.toString(), ...(value !== undefined ? { value } : {}) });
        break;
      }
      case 1:
        out.push({ type: 'email', value: ia5(gn, 'rfc822Name') });
        break;
      case 2:
        out.push({ type: 'dns', value: ia5(gn, 'dNSName') });
        break;
      case 6:
        out.push({ type: 'uri', value: ia5(gn, 'uniformResourceIdentifier') });
        break;
      case 7:
        out.push({ type: 'ip', value: ipText((gn.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView) });
        break;
      default:
        out.push({ type: 'other', tag: id.tagNumber });
    }
  }
  return out;
}

function children(b: asn1js.AsnType): asn1js.BaseBlock[] {
  const v = (b as asn1js.Constructed).valueBlock?.value;
  return Array.isArray(v) ? v : [];
}

function isContext(b: asn1js.BaseBlock, tag: number): boolean {
  return b.idBlock.tagClass === 3 && b.idBlock.tagNumber === tag;
}

/** A uniformResourceIdentifier GeneralName ([6] IA5String) as text, or undefined for any other name. */
function uriOf(gn: asn1js.BaseBlock): string | undefined {
  if (!isContext(gn, 6) || gn.idBlock.isConstructed) return undefined;
  return Buffer.from((gn.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView).toString('latin1');
}

/** The extensions the verifiers use, parsed once per certificate. Throws on a malformed one. */
export function certExtensions(cert: Cert): CertExtensions {
  const cached = extCache.get(cert);
  if (cached) return cached;
  const out: CertExtensions = { subjectAltNames: [], ocspUrls: [], crlUrls: [], critical: [] };
  for (const ext of cert.pkijs.extensions ?? []) {
    const critical = ext.critical === true;
    if (critical) out.critical.push(ext.extnID);
    const value = ext.extnValue.valueBlock.valueHexView;
    switch (ext.extnID) {
      case OID.basicConstraints: {
        const bc = new pkijs.BasicConstraints({ schema: der(value, 'basicConstraints') });
        const pathLen = typeof bc.pathLenConstraint === 'number' ? bc.pathLenConstraint : bc.pathLenConstraint?.valueBlock.valueDec;
        out.basicConstraints = { critical, ca: bc.cA === true, ...(pathLen !== undefined ? { pathLen } : {}) };
        break;
      }
      case OID.keyUsage:
        out.keyUsage = { critical, usages: keyUsageFlags(der(value, 'keyUsage')) };
        break;
      case OID.extKeyUsage:
        out.extKeyUsage = { critical, usages: new pkijs.ExtKeyUsage({ schema: der(value, 'extKeyUsage') }).keyPurposes };
        break;
      case OID.subjectAltName:
        out.subjectAltNames = generalNames(der(value, 'subjectAltName'));
        break;
      case OID.authorityInfoAccess:
        // SEQUENCE OF AccessDescription { accessMethod OID, accessLocation GeneralName }: OCSP URIs only.
        for (const ad of children(der(value, 'authorityInfoAccess'))) {
          const [method, location] = children(ad);
          if (method instanceof asn1js.ObjectIdentifier && method.valueBlock.toString() === OID.ocsp && location) {
            const url = uriOf(location);
            if (url !== undefined) out.ocspUrls.push(url);
          }
        }
        break;
      case OID.crlDistributionPoints:
        // SEQUENCE OF DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } … }: URIs only.
        // Other name forms are skipped, not refused, as Go's parser does (notation-core-go vectors use them).
        for (const dp of children(der(value, 'cRLDistributionPoints'))) {
          const dpName = children(dp).find((e) => isContext(e, 0));
          const fullName = dpName ? children(dpName).find((e) => isContext(e, 0)) : undefined;
          for (const gn of fullName ? children(fullName) : []) {
            const url = uriOf(gn);
            if (url !== undefined) out.crlUrls.push(url);
          }
        }
        break;
    }
  }
  extCache.set(cert, out);
  return out;
}

/** The raw extnValue (DER inside the OCTET STRING) of extension `oid`, or undefined. */
export function extensionValue(cert: Cert, oid: string): Buffer | undefined {
  const ext = cert.pkijs.extensions?.find((e) => e.extnID === oid);
  return ext ? Buffer.from(ext.extnValue.valueBlock.valueHexView) : undefined;
}

/** basicConstraints cA=true. */
export function isCA(cert: Cert): boolean {
  return certExtensions(cert).basicConstraints?.ca === true;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Go `time.RFC1123Z` in UTC: "Mon, 02 Jan 2006 15:04:05 +0000". */
export function formatRFC1123Z(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
