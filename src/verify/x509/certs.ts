/**
 * Provider-neutral X.509 certificate helpers.
 *
 * Exported API:
 * - `parseCertificate(der: Uint8Array): Cert` — parse one DER certificate (throws on bad input).
 * - `parseCertificates(data: Uint8Array): Cert[]` — every PEM `CERTIFICATE` block of `data`, or, when
 *   there is no PEM block, one or more concatenated DER certificates. Throws when nothing parses.
 * - `goSubjectString(cert)` / `Cert.subject` — the subject as Go's `pkix.Name.String()` prints it
 *   (RFC 4514 order, most specific first), which is what notation-go matches and prints.
 * - `isSelfSigned(cert)` — the signature verifies with the certificate's own key.
 * - `isSelfIssued(cert)` — raw subject == raw issuer.
 * - `isIssuedBy(child, parent)` — raw issuer == parent's raw subject and the signature verifies with the
 *   parent key (SHA-1 signatures are refused, as Go's `CheckSignatureFrom` does).
 * - `certExtensions(cert)` — basicConstraints / keyUsage / extKeyUsage / AIA OCSP / CRL DP, parsed.
 * - `formatRFC1123Z(date)` — Go's `time.RFC1123Z` ("Tue, 27 Jun 2023 06:10:00 +0000") for messages.
 * - `KeyUsage`, `EKU` constants.
 */
import { X509Certificate, createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import * as px from '@peculiar/x509';

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

export function parseCertificate(der: Uint8Array): Cert {
  const buf = Buffer.from(der);
  const node = new X509Certificate(buf);
  const asn = asn1js.fromBER(new Uint8Array(buf).buffer);
  if (asn.offset === -1) throw new Error('malformed certificate');
  const cert = new pkijs.Certificate({ schema: asn.result });
  const rawSubject = Buffer.from(cert.subject.valueBeforeDecode);
  const rawIssuer = Buffer.from(cert.issuer.valueBeforeDecode);
  let serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  return {
    der: Buffer.from(node.raw),
    node,
    pkijs: cert,
    subject: goNameString(cert.subject),
    issuer: goNameString(cert.issuer),
    rawSubject,
    rawIssuer,
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    sha256: createHash('sha256').update(node.raw).digest('hex'),
    serialHex: serial.toString('hex'),
    signatureAlgorithm: cert.signatureAlgorithm.algorithmId,
  };
}

/** All certificates in a PEM or DER blob (every PEM block counts; DER may be concatenated). */
export function parseCertificates(data: Uint8Array): Cert[] {
  const text = Buffer.from(data).toString('latin1');
  const out: Cert[] = [];
  let sawPem = false;
  for (const m of text.matchAll(PEM_RE)) {
    sawPem = true;
    if (m[1] !== 'CERTIFICATE') continue;
    const body = (m[2] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error('invalid base64 in PEM block');
    out.push(parseCertificate(Buffer.from(body, 'base64')));
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
    out.push(parseCertificate(rest.subarray(0, len)));
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
// Go pkix.Name.String()

const GO_ATTR_NAMES: Record<string, string> = {
  '2.5.4.6': 'C',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.3': 'CN',
  '2.5.4.5': 'SERIALNUMBER',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.17': 'POSTALCODE',
};
// Order of pkix.Name.ToRDNSequence: C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER.
const GO_RDN_ORDER = ['2.5.4.6', '2.5.4.8', '2.5.4.7', '2.5.4.9', '2.5.4.17', '2.5.4.10', '2.5.4.11', '2.5.4.3', '2.5.4.5'];

function atvString(v: unknown): string {
  const vb = (v as { valueBlock?: { value?: unknown } }).valueBlock;
  if (vb && typeof vb.value === 'string') return vb.value;
  return '';
}

function goEscape(s: string): string {
  const chars = [...s];
  let out = '';
  chars.forEach((c, k) => {
    let esc = false;
    if (',+"\\<>;'.includes(c)) esc = true;
    else if (c === ' ') esc = k === 0 || k === chars.length - 1;
    else if (c === '#') esc = k === 0;
    out += esc ? '\\' + c : c;
  });
  return out;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function goMarshalStringHex(s: string): string {
  const v = PRINTABLE.test(s) ? new asn1js.PrintableString({ value: s }) : new asn1js.Utf8String({ value: s });
  return Buffer.from(v.toBER(false)).toString('hex');
}

/** Go's `pkix.Name.String()` for a pkijs name. */
export function goNameString(name: pkijs.RelativeDistinguishedNames): string {
  const atvs = name.typesAndValues.map((t) => ({ type: t.type, value: atvString(t.value) }));
  // rdns in "sequence" order; printed in reverse.
  const rdns: { type: string; value: string }[][] = [];
  // Non-standard attributes first, so that they are printed last (Go issue 39924).
  for (const a of atvs) {
    if (!GO_ATTR_NAMES[a.type]) rdns.push([a]);
  }
  for (const oid of GO_RDN_ORDER) {
    const vals = atvs.filter((a) => a.type === oid);
    if (oid === '2.5.4.3' || oid === '2.5.4.5') {
      // CommonName and SerialNumber are single-valued fields in pkix.Name: the last one wins.
      const last = vals[vals.length - 1];
      if (last && last.value !== '') rdns.push([last]);
      continue;
    }
    if (vals.length > 0) rdns.push(vals);
  }
  const parts: string[] = [];
  for (let i = rdns.length - 1; i >= 0; i--) {
    const rdn = rdns[i]!;
    parts.push(
      rdn
        .map((tv) => {
          const tn = GO_ATTR_NAMES[tv.type];
          if (!tn) return `${tv.type}=#${goMarshalStringHex(tv.value)}`;
          return `${tn}=${goEscape(tv.value)}`;
        })
        .join('+'),
    );
  }
  return parts.join(',');
}

export function goSubjectString(cert: Cert): string {
  return cert.subject;
}

// ---------------------------------------------------------------------------------------------
// Signatures and extensions

const SHA1_SIG_OIDS = new Set(['1.2.840.113549.1.1.5', '1.2.840.10045.4.1', '1.2.840.10040.4.3']);

export function isSelfIssued(cert: Cert): boolean {
  return cert.rawSubject.equals(cert.rawIssuer);
}

/** The certificate's signature verifies with its own public key. */
export function isSelfSigned(cert: Cert): boolean {
  try {
    return cert.node.verify(cert.node.publicKey);
  } catch {
    return false;
  }
}

/** Why `child` is not issued by `parent`, or undefined when it is (name chaining + signature). */
export function issuanceError(child: Cert, parent: Cert): string | undefined {
  if (!child.rawIssuer.equals(parent.rawSubject)) {
    return `issuer of certificate "${child.subject}" does not match subject of certificate "${parent.subject}"`;
  }
  if (SHA1_SIG_OIDS.has(child.signatureAlgorithm)) {
    return `certificate "${child.subject}" is signed with SHA-1, which is insecure`;
  }
  let ok = false;
  try {
    ok = child.node.verify(parent.node.publicKey);
  } catch {
    ok = false;
  }
  if (!ok) return `signature of certificate "${child.subject}" does not verify with the key of "${parent.subject}"`;
  return undefined;
}

export function isIssuedBy(child: Cert, parent: Cert): boolean {
  return issuanceError(child, parent) === undefined;
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

export interface CertExtensions {
  basicConstraints?: { critical: boolean; ca: boolean; pathLen?: number };
  keyUsage?: { critical: boolean; usages: number };
  extKeyUsage?: { critical: boolean; usages: string[] };
  ocspUrls: string[];
  crlUrls: string[];
  /** OIDs of critical extensions. */
  critical: string[];
}

const extCache = new WeakMap<Cert, CertExtensions>();

export function certExtensions(cert: Cert): CertExtensions {
  const cached = extCache.get(cert);
  if (cached) return cached;
  const pc = new px.X509Certificate(new Uint8Array(cert.der));
  const out: CertExtensions = { ocspUrls: [], crlUrls: [], critical: [] };
  for (const ext of pc.extensions) {
    if (ext.critical) out.critical.push(ext.type);
    if (ext instanceof px.BasicConstraintsExtension) {
      out.basicConstraints = { critical: ext.critical, ca: ext.ca, ...(ext.pathLength !== undefined ? { pathLen: ext.pathLength } : {}) };
    } else if (ext instanceof px.KeyUsagesExtension) {
      out.keyUsage = { critical: ext.critical, usages: ext.usages };
    } else if (ext instanceof px.ExtendedKeyUsageExtension) {
      out.extKeyUsage = { critical: ext.critical, usages: ext.usages.map((u) => String(u)) };
    } else if (ext instanceof px.AuthorityInfoAccessExtension) {
      for (const gn of ext.ocsp) if (gn.type === 'url') out.ocspUrls.push(gn.value);
    } else if (ext instanceof px.CRLDistributionPointsExtension) {
      for (const dp of ext.distributionPoints) {
        const full = dp.distributionPoint?.fullName ?? [];
        for (const n of full) if (n.uniformResourceIdentifier) out.crlUrls.push(n.uniformResourceIdentifier);
      }
    }
  }
  extCache.set(cert, out);
  return out;
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

/** "AB:CD:…" upper-case colon form of a hex fingerprint, as OpenSSL and kubectl print it. */
export function colonHex(hex: string): string {
  return hex.toUpperCase().match(/../g)?.join(':') ?? '';
}
