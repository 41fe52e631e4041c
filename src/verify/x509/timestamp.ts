/**
 * RFC 3161 timestamp tokens (CMS SignedData over TSTInfo): the one timestamp stack of both providers.
 * Notation trusts TSA roots and takes the rest of the chain from the token (notaryproject/tspclient-go);
 * Sigstore trusts the TSA certificate chains listed in the trusted root (sigstore/timestamp-authority,
 * @sigstore/verify). Parsing, the imprint and the CMS signature checks are shared.
 *
 * Exported API:
 * - `parseTimestampToken(der, limits?): TimestampToken` — parse and structurally check a token
 *   (SignedData v3, eContentType id-ct-TSTInfo, TSTInfo v1, SHA-256/384/512 imprint); its certificates
 *   count against `maxCertificates` and `maxCertificateSize`. Throws `TimestampError` or a LimitError.
 * - `parseTimestampResponse(der, limits?)` — the same from a TimeStampResp (status granted).
 * - `verifyTimestampToken(token, message, roots, opts): Promise<TimestampResult>` (notation) — imprint ==
 *   hash(message); one SignerInfo (v1, issuerAndSerialNumber) whose certificate is in the token; mandatory
 *   SigningCertificateV2 (SHA-256/384/512 cert hash); content-type and message-digest attributes; CMS
 *   signature; signer certificate EKU exactly id-kp-timeStamping (critical); path built to one of `roots`
 *   at genTime (`buildChain`, bounded) and checked with `validateTimestampingChain`; optional signing-time
 *   attribute inside the chain validity. Returns the time interval genTime ± accuracy.
 * - `verifyTimestampByAuthority(token, message, authorities, opts): Promise<Date>` (Sigstore) — imprint;
 *   an authority valid at genTime whose first certificate is the signer (issuer and serial); that
 *   certificate chains to the rest of the authority's chain at genTime; message-digest attribute and CMS
 *   signature. Returns genTime.
 * - `tokenSignedBy(token, cert)` — the token's SignerInfo names `cert`.
 * - `tsaEKUProblem(cert)` — why a certificate may not sign timestamps for Sigstore (exactly one EKU,
 *   id-kp-timeStamping; critical not required), or undefined.
 * - `TimestampError` (Error subclass).
 */
import { createHash, verify as cryptoVerify, constants as cc, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { LimitError, type Limits } from '../../api/limits.ts';
import { parseCertificate, certExtensions, EKU, type Cert, publicKeyOf } from './certs.ts';
import { buildChain, validateTimestampingChain } from './chain.ts';
import { childrenOf, longestOID, readTLV, type TLV } from './der.ts';

/** Budgets and deadline for verifying a token. */
export interface TimestampVerifyOptions {
  limits?: Pick<Limits, 'maxChainCandidates' | 'maxChainSignatureChecks' | 'maxChainDepth'>;
  signal?: AbortSignal;
}

/** A Sigstore timestamp authority: its certificate chain (signer first) and when it may be used. */
export interface TimestampAuthority {
  certChain: Cert[];
  validFor: { start: Date; end: Date };
}

export class TimestampError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimestampError';
  }
}

export interface TimestampToken {
  der: Buffer;
  signedData: pkijs.SignedData;
  tstInfo: pkijs.TSTInfo;
  eContent: Buffer;
  hashAlgorithm: HashName;
  genTime: Date;
  accuracyMs: number;
  policy: string;
  certificates: Cert[];
}

export interface TimestampResult {
  genTime: Date;
  accuracyMs: number;
  /** genTime − accuracy */
  lower: Date;
  /** genTime + accuracy */
  upper: Date;
  policy: string;
  /** TSA signing certificate. */
  signer: Cert;
  /** Chain from the TSA certificate to the trusted root. */
  chain: Cert[];
}

type HashName = 'sha256' | 'sha384' | 'sha512';

const HASH_OIDS: Record<string, HashName> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const SHA1_OID = '1.3.14.3.2.26';
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_TSTINFO = '1.2.840.113549.1.9.16.1.4';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_SIGNING_TIME = '1.2.840.113549.1.9.5';
const OID_SIGNING_CERT_V2 = '1.2.840.113549.1.9.16.2.47';
const ETSI_BASELINE_POLICY = '0.4.0.2023.1.1';

function octets(v: asn1js.OctetString): Buffer {
  if (v.idBlock.isConstructed) {
    return Buffer.concat((v.valueBlock.value as asn1js.OctetString[]).map((x) => octets(x)));
  }
  return Buffer.from(v.valueBlock.valueHexView);
}

/**
 * Certificates in the `certificates` set of a ContentInfo(SignedData) TLV, counted from the DER without
 * parsing them: pkijs parses every one of them with the SignedData, so the budget is checked first.
 */
function embeddedCertificateCount(b: Uint8Array, contentInfo: TLV): number {
  // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
  const content = childrenOf(b, contentInfo)[1];
  const signedData = content ? childrenOf(b, content)[0] : undefined;
  // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, certificates [0] IMPLICIT …, … }
  const certs = signedData ? childrenOf(b, signedData).find((t) => t.tag === 0xa0) : undefined;
  return certs ? childrenOf(b, certs).length : 0;
}

function checkCertificateCount(b: Uint8Array, contentInfo: TLV | undefined, limits: Pick<Limits, 'maxCertificates'> | undefined): void {
  if (!limits || !contentInfo) return;
  const n = embeddedCertificateCount(b, contentInfo);
  if (n > limits.maxCertificates) throw new LimitError('maxCertificates', `the RFC 3161 timestamp token carries ${n} certificates, more than ${limits.maxCertificates}`);
}

/** Real OIDs are a few dozen bytes; asn1js would spend seconds on a huge one. */
const MaxOIDBytes = 128;

function checkOIDs(b: Uint8Array, top: TLV | undefined): void {
  const n = top ? longestOID(b, top) : 0;
  if (n > MaxOIDBytes) throw new TimestampError(`cms: syntax error: invalid signed data: an OBJECT IDENTIFIER of ${n} bytes (longer than ${MaxOIDBytes})`);
}

export function parseTimestampToken(der: Uint8Array, limits?: Pick<Limits, 'maxCertificates' | 'maxCertificateSize'>): TimestampToken {
  const buf = Buffer.from(der);
  const top = readTLV(buf, 0);
  checkCertificateCount(buf, top, limits);
  checkOIDs(buf, top);
  const asn = asn1js.fromBER(new Uint8Array(buf).buffer);
  if (asn.offset === -1) throw new TimestampError(`cms: syntax error: invalid signed data: failed to convert from BER to DER: ${asn.result.error}`);
  let ci: pkijs.ContentInfo;
  try {
    ci = new pkijs.ContentInfo({ schema: asn.result });
  } catch (e) {
    throw new TimestampError(`cms: syntax error: invalid signed data: ${(e as Error).message}`);
  }
  return fromContentInfo(ci, buf, limits);
}

/** A TimeStampResp (RFC 3161 §2.4.2): its token, when the status is granted or grantedWithMods. */
export function parseTimestampResponse(der: Uint8Array, limits?: Pick<Limits, 'maxCertificates' | 'maxCertificateSize'>): TimestampToken {
  // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
  const top = readTLV(der, 0);
  checkCertificateCount(der, top ? childrenOf(der, top)[1] : undefined, limits);
  checkOIDs(der, top);
  const asn = asn1js.fromBER(new Uint8Array(der).buffer);
  if (asn.offset === -1) throw new TimestampError(`not a DER TimeStampResp: ${asn.result.error}`);
  let resp: pkijs.TimeStampResp;
  try {
    resp = new pkijs.TimeStampResp({ schema: asn.result });
  } catch (e) {
    throw new TimestampError(`not a TimeStampResp: ${(e as Error).message}`);
  }
  const status = resp.status.status as number;
  if (status !== 0 && status !== 1) throw new TimestampError(`the timestamp authority refused the request (PKIStatus ${status})`);
  if (!resp.timeStampToken) throw new TimestampError('the TimeStampResp holds no timeStampToken');
  return fromContentInfo(resp.timeStampToken, Buffer.from(resp.timeStampToken.toSchema().toBER(false)), limits);
}

function fromContentInfo(ci: pkijs.ContentInfo, buf: Buffer, limits?: Pick<Limits, 'maxCertificates' | 'maxCertificateSize'>): TimestampToken {
  if (ci.contentType !== OID_SIGNED_DATA) throw new TimestampError(`cms: syntax error: not a signed data: content type ${ci.contentType}`);
  let sd: pkijs.SignedData;
  try {
    sd = new pkijs.SignedData({ schema: ci.content });
  } catch (e) {
    throw new TimestampError(`cms: syntax error: invalid signed data: ${(e as Error).message}`);
  }
  if (sd.version !== 3) throw new TimestampError(`cms: syntax error: unsupported signed data version: got ${sd.version}, want 3`);
  const eType = sd.encapContentInfo.eContentType;
  if (eType !== OID_TSTINFO) {
    throw new TimestampError(`unexpected content type: ${eType}. Expected to be id-ct-TSTInfo (${OID_TSTINFO})`);
  }
  const ec = sd.encapContentInfo.eContent;
  if (!ec) throw new TimestampError('cms: syntax error: missing encapsulated content');
  const eContent = octets(ec);
  let tst: pkijs.TSTInfo;
  try {
    const a = asn1js.fromBER(new Uint8Array(eContent).buffer);
    if (a.offset === -1) throw new Error(a.result.error);
    tst = new pkijs.TSTInfo({ schema: a.result });
  } catch (e) {
    throw new TimestampError(`cannot unmarshal TSTInfo: ${(e as Error).message}`);
  }
  if (tst.version !== 1) throw new TimestampError(`timestamp token info version must be 1, but got ${tst.version}`);
  const hOid = tst.messageImprint.hashAlgorithm.algorithmId;
  const hashAlgorithm = HASH_OIDS[hOid];
  if (!hashAlgorithm) throw new TimestampError(`unrecognized hash algorithm: ${hOid}`);
  let accuracyMs = 0;
  const acc = tst.accuracy;
  if (acc && (acc.seconds !== undefined || acc.millis !== undefined || acc.micros !== undefined)) {
    accuracyMs = (acc.seconds ?? 0) * 1000 + (acc.millis ?? 0) + (acc.micros ?? 0) / 1000;
  } else if (tst.policy === ETSI_BASELINE_POLICY) {
    accuracyMs = 1000;
  }
  const embedded = (sd.certificates ?? []).filter((c) => c instanceof pkijs.Certificate);
  const certificates: Cert[] = [];
  for (const c of embedded) {
    try {
      certificates.push(parseCertificate(new Uint8Array(c.toSchema().toBER(false)), limits, c));
    } catch (e) {
      if (e instanceof LimitError) throw e;
      throw new TimestampError(`cms: syntax error: invalid certificate in token: ${(e as Error).message}`);
    }
  }
  return { der: buf, signedData: sd, tstInfo: tst, eContent, hashAlgorithm, genTime: tst.genTime, accuracyMs, policy: tst.policy, certificates };
}

function attrValue(signer: pkijs.SignerInfo, oid: string): asn1js.AsnType | undefined {
  const attr = signer.signedAttrs?.attributes.find((a) => a.type === oid);
  return attr?.values[0];
}

function sigParams(signer: pkijs.SignerInfo, key: KeyObject): { hash: string; opts: KeyObject | Record<string, unknown> } {
  const digestOid = signer.digestAlgorithm.algorithmId;
  const sigOid = signer.signatureAlgorithm.algorithmId;
  const byOid: Record<string, string> = {
    '1.2.840.113549.1.1.11': 'sha256',
    '1.2.840.113549.1.1.12': 'sha384',
    '1.2.840.113549.1.1.13': 'sha512',
    '1.2.840.10045.4.3.2': 'sha256',
    '1.2.840.10045.4.3.3': 'sha384',
    '1.2.840.10045.4.3.4': 'sha512',
  };
  if (sigOid === '1.2.840.113549.1.1.10') {
    const params = new pkijs.RSASSAPSSParams({ schema: signer.signatureAlgorithm.algorithmParams });
    const hash = HASH_OIDS[params.hashAlgorithm.algorithmId];
    if (!hash) throw new TimestampError(`cms verification failure: unsupported RSASSA-PSS hash ${params.hashAlgorithm.algorithmId}`);
    return { hash, opts: { key, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: params.saltLength } };
  }
  const hash = byOid[sigOid] ?? (sigOid === '1.2.840.113549.1.1.1' || sigOid === '1.2.840.10045.2.1' ? HASH_OIDS[digestOid] : undefined);
  if (!hash) throw new TimestampError(`cms verification failure: unsupported signature algorithm ${sigOid} with digest ${digestOid}`);
  // PKCS#1 v1.5 and DER ECDSA are node:crypto's defaults: the bare key, checked fastest.
  return { hash, opts: key };
}

function sameIssuerSerial(cert: Cert, sid: pkijs.IssuerAndSerialNumber): boolean {
  const issuerDer = Buffer.from(sid.issuer.toSchema().toBER(false));
  let serial = Buffer.from(sid.serialNumber.valueBlock.valueHexView);
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  return cert.rawIssuer.equals(issuerDer) && cert.serialHex === serial.toString('hex');
}

interface EssCertId {
  hash: string;
  certHash: Buffer;
  issuerSerial?: asn1js.Sequence;
}

function parseSigningCertificateV2(v: asn1js.AsnType): EssCertId[] {
  const fail = (m: string) => new TimestampError(`failed to get SigningCertificateV2 from signed attributes: ${m}`);
  if (!(v instanceof asn1js.Sequence)) throw fail('sequence truncated');
  const certs = v.valueBlock.value[0];
  if (!(certs instanceof asn1js.Sequence)) throw fail('sequence truncated');
  const out: EssCertId[] = [];
  for (const id of certs.valueBlock.value) {
    if (!(id instanceof asn1js.Sequence)) throw fail('sequence truncated');
    const parts = id.valueBlock.value;
    let i = 0;
    let hash = 'sha256';
    if (parts[0] instanceof asn1js.Sequence) {
      const oid = (parts[0].valueBlock.value[0] as asn1js.ObjectIdentifier | undefined)?.valueBlock.toString() ?? '';
      if (oid === SHA1_OID) throw new TimestampError('unsupported certificate hash algorithm in SigningCertificateV2 attribute');
      const h = HASH_OIDS[oid];
      if (!h) throw new TimestampError('unsupported certificate hash algorithm in SigningCertificateV2 attribute');
      hash = h;
      i = 1;
    }
    const ch = parts[i];
    if (!(ch instanceof asn1js.OctetString)) throw fail('sequence truncated');
    const is = parts[i + 1];
    out.push({ hash, certHash: octets(ch), ...(is instanceof asn1js.Sequence ? { issuerSerial: is } : {}) });
  }
  return out;
}

export async function verifyTimestampToken(t: TimestampToken, message: Uint8Array, roots: Cert[], opts: TimestampVerifyOptions = {}): Promise<TimestampResult> {
  checkImprint(t, message);
  return verifySignedToken(t, roots, opts);
}

/** TSTInfo.Validate: the message imprint must be the hash of `message`. */
export function checkImprint(t: TimestampToken, message: Uint8Array): void {
  const imprint = Buffer.from(t.tstInfo.messageImprint.hashedMessage.valueBlock.valueHexView);
  const expected = createHash(t.hashAlgorithm).update(message).digest();
  if (!imprint.equals(expected)) throw new TimestampError('invalid TSTInfo: mismatched message');
}

/** The single SignerInfo (v1, issuerAndSerialNumber) of a token. */
function signerOf(t: TimestampToken): { signer: pkijs.SignerInfo; sid: pkijs.IssuerAndSerialNumber } {
  const sd = t.signedData;
  if (sd.signerInfos.length !== 1) throw new TimestampError('failed to verify signed token: signerInfo not found');
  const signer = sd.signerInfos[0]!;
  if (signer.version !== 1 || !(signer.sid instanceof pkijs.IssuerAndSerialNumber)) {
    throw new TimestampError(`failed to verify signed token: cms: syntax error: unsupported signer info version: got ${signer.version}, want 1`);
  }
  return { signer, sid: signer.sid };
}

/** The content-type and message-digest signed attributes (the token's TSTInfo is what was signed). */
function checkSignedAttributes(t: TimestampToken, signer: pkijs.SignerInfo): pkijs.SignedAndUnsignedAttributes {
  if (!signer.signedAttrs) throw new TimestampError('failed to verify signed token: cms: syntax error: missing signed attributes');
  const ct = attrValue(signer, OID_CONTENT_TYPE);
  if (!(ct instanceof asn1js.ObjectIdentifier)) throw new TimestampError('failed to verify signed token: cms verification failure: missing content type in signed attributes');
  if (ct.valueBlock.toString() !== OID_TSTINFO) throw new TimestampError('failed to verify signed token: cms verification failure: mismatch content type');
  const digestHash = HASH_OIDS[signer.digestAlgorithm.algorithmId];
  if (!digestHash) throw new TimestampError(`failed to verify signed token: unsupported digest algorithm ${signer.digestAlgorithm.algorithmId}`);
  const md = attrValue(signer, OID_MESSAGE_DIGEST);
  if (!(md instanceof asn1js.OctetString)) throw new TimestampError('failed to verify signed token: cms verification failure: missing message digest in signed attributes');
  if (!octets(md).equals(createHash(digestHash).update(t.eContent).digest())) {
    throw new TimestampError('failed to verify signed token: cms verification failure: mismatch message digest');
  }
  return signer.signedAttrs;
}

/** The CMS signature over the DER SET of signed attributes, by `signerCert`. */
function checkSignature(signer: pkijs.SignerInfo, signedAttrs: pkijs.SignedAndUnsignedAttributes, signerCert: Cert): void {
  const enc = Buffer.from(signedAttrs.encodedValue);
  enc[0] = 0x31;
  const { hash, opts } = sigParams(signer, publicKeyOf(signerCert));
  let ok = false;
  try {
    ok = cryptoVerify(hash, enc, opts as never, Buffer.from(signer.signature.valueBlock.valueHexView));
  } catch {
    ok = false;
  }
  if (!ok) throw new TimestampError('failed to verify signed token: cms verification failure: signature verification error');
}

/** SignedToken.Verify: everything except the imprint (see `verifyTimestampToken`). */
export async function verifySignedToken(t: TimestampToken, roots: Cert[], vopts: TimestampVerifyOptions = {}): Promise<TimestampResult> {
  const { signer, sid } = signerOf(t);
  const signerCert = t.certificates.find((c) => sameIssuerSerial(c, sid));
  if (!signerCert) throw new TimestampError('failed to verify signed token: signing certificate not found in the timestamp token');
  const signedAttrs = checkSignedAttributes(t, signer);

  // SigningCertificateV2 (mandatory).
  const scv2 = attrValue(signer, OID_SIGNING_CERT_V2);
  if (!scv2) throw new TimestampError('failed to verify signed token: failed to get SigningCertificateV2 from signed attributes: attribute not found');
  const ids = parseSigningCertificateV2(scv2);
  const first = ids[0];
  if (!first) throw new TimestampError('failed to verify signed token: signingCertificateV2 does not contain any certificate');
  if (first.issuerSerial) {
    const names = first.issuerSerial.valueBlock.value[0];
    const hasDir = names instanceof asn1js.Sequence && names.valueBlock.value.some((gn) => gn.idBlock.tagClass === 3 && gn.idBlock.tagNumber === 4);
    if (!hasDir) throw new TimestampError('failed to verify signed token: issuer name is missing in IssuerSerial');
  }
  if (!createHash(first.hash).update(signerCert.der).digest().equals(first.certHash)) {
    throw new TimestampError('failed to verify signed token: signing certificate hash does not match CertHash in signed attribute');
  }
  checkSignature(signer, signedAttrs, signerCert);

  // Signer certificate must have exactly one EKU, id-kp-timeStamping, marked critical.
  const eku = certExtensions(signerCert).extKeyUsage;
  if (!eku || !eku.critical || eku.usages.length !== 1 || eku.usages[0] !== EKU.timeStamping) {
    throw new TimestampError('failed to verify signed token: signing certificate must have and only have timestamping as extended key usage, and it must be marked critical');
  }

  let chain: Cert[];
  try {
    chain = await buildChain(signerCert, t.certificates, roots, { at: t.genTime, ...vopts });
  } catch (e) {
    if (e instanceof LimitError || vopts.signal?.aborted) throw e;
    throw new TimestampError(`failed to verify signed token: cms verification failure: ${(e as Error).message}`);
  }
  const st = attrValue(signer, OID_SIGNING_TIME);
  if (st instanceof asn1js.UTCTime || st instanceof asn1js.GeneralizedTime) {
    const when = st.toDate();
    for (const c of chain) {
      if (when < c.notBefore || when > c.notAfter) {
        throw new TimestampError(`failed to verify signed token: cms verification failure: signing time ${when.toISOString()} is outside the validity of certificate "${c.subject}"`);
      }
    }
  }
  try {
    validateTimestampingChain(chain);
  } catch (e) {
    throw new TimestampError(`failed to validate the timestamping certificate chain with error: ${(e as Error).message}`);
  }
  return {
    genTime: t.genTime,
    accuracyMs: t.accuracyMs,
    lower: new Date(t.genTime.getTime() - t.accuracyMs),
    upper: new Date(t.genTime.getTime() + t.accuracyMs),
    policy: t.policy,
    signer: signerCert,
    chain,
  };
}

/** The token's SignerInfo names `cert` (issuer and serial number). */
export function tokenSignedBy(t: TimestampToken, cert: Cert): boolean {
  const signer = t.signedData.signerInfos[0];
  return signer?.sid instanceof pkijs.IssuerAndSerialNumber && sameIssuerSerial(cert, signer.sid);
}

/** Why `cert` may not sign timestamps for Sigstore (sigstore/timestamp-authority `verifyExtendedKeyUsage`), or undefined. */
export function tsaEKUProblem(cert: Cert): string | undefined {
  const eku = certExtensions(cert).extKeyUsage;
  if (!eku) return 'has no extended key usage (timeStamping is required)';
  if (eku.usages.length !== 1 || eku.usages[0] !== EKU.timeStamping) {
    return `has extended key usages [${eku.usages.join(', ')}]; exactly one, timeStamping (${EKU.timeStamping}), is required`;
  }
  return undefined;
}

/**
 * Verifies a token as @sigstore/verify does for a trusted root's timestamp authorities (see the module
 * comment) and returns genTime. Throws TimestampError, a LimitError, or the abort reason.
 */
export async function verifyTimestampByAuthority(t: TimestampToken, message: Uint8Array, authorities: TimestampAuthority[], opts: TimestampVerifyOptions = {}): Promise<Date> {
  const imprint = Buffer.from(t.tstInfo.messageImprint.hashedMessage.valueBlock.valueHexView);
  if (!imprint.equals(createHash(t.hashAlgorithm).update(message).digest())) throw new TimestampError('message imprint does not match the signature');
  const { signer, sid } = signerOf(t);
  const at = t.genTime;
  for (const a of authorities) {
    const [leaf, ...cas] = a.certChain;
    if (!leaf || at < a.validFor.start || at > a.validFor.end || !sameIssuerSerial(leaf, sid)) continue;
    try {
      await buildChain(leaf, [], cas, { at, issuersMustBeCA: true, ...opts });
      checkSignature(signer, checkSignedAttributes(t, signer), leaf);
      return at;
    } catch (e) {
      if (e instanceof LimitError || opts.signal?.aborted) throw e;
    }
  }
  throw new TimestampError('timestamp could not be verified');
}
