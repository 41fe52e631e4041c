/**
 * Certificate revocation checking (OCSP, then CRL), as notation-core-go `revocation` does it.
 * Provider-neutral.
 *
 * Exported API:
 * - `checkChainRevocation(chain: Cert[], opts: RevocationOptions): Promise<ChainRevocationResult>` —
 *   checks every certificate except the last (the root is never revocable) in parallel. Per cert: OCSP
 *   (AIA URLs, http only, SHA-1 CertID, GET when short, else POST) → on "unknown" or error fall back to CRL
 *   (CDP URLs, http only) when the cert has CDPs → no URLs at all = "nonRevokable" (OK). Aggregate: any
 *   revoked → revoked; any unknown → unknown; else ok. Never throws; failures to fetch or to validate a
 *   response make the status "unknown" with the reason.
 * - `defaultHttpFetcher` — node `fetch` with a per-request timeout and size cap.
 * - `RevocationCache` — in-memory cache of OCSP responses and CRLs until their nextUpdate.
 * - types `HttpFetcher`, `RevocationStatus`, `CertRevocationResult`, `RevocationOptions`.
 */
import { createHash, verify as cryptoVerify, constants as cc } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { certExtensions, issuanceError, type Cert, parseCertificate, publicKeyOf } from './certs.ts';
import { ByteBoundedMap } from '../../util/bounded-map.ts';

export interface HttpRequest {
  method: 'GET' | 'POST';
  body?: Buffer;
  contentType?: string;
  timeoutMs: number;
  maxBytes: number;
  signal?: AbortSignal;
}

/** Fetches `url`; resolves the body of a 200 response, rejects otherwise (status, timeout, size). */
export type HttpFetcher = (url: string, req: HttpRequest) => Promise<Buffer>;

export type RevocationStatus = 'ok' | 'revoked' | 'unknown';

export interface CertRevocationResult {
  subject: string;
  status: RevocationStatus | 'nonRevokable';
  method: 'ocsp' | 'crl' | 'none';
  /** Why the status is unknown, or revocation details. */
  detail?: string;
  revokedAt?: Date;
}

export interface ChainRevocationResult {
  status: RevocationStatus;
  /** Per certificate, chain order (the root last, always nonRevokable). */
  certs: CertRevocationResult[];
  /** Human summary for unknown/revoked. */
  message?: string;
}

export interface RevocationOptions {
  fetch?: HttpFetcher;
  /** Per-request timeout; default 2000 ms (OCSP and CRL). */
  timeoutMs?: number;
  now?: Date;
  /** Authentic signing time (Notation signingAuthority scheme): revocations whose invalidityDate is later do not count. */
  signingTime?: Date;
  cache?: RevocationCache;
  signal?: AbortSignal;
}

const OCSP_MAX = 20 * 1024;
const CRL_MAX = 32 * 1024 * 1024;

export const defaultHttpFetcher: HttpFetcher = async (url, req) => {
  const signals = [AbortSignal.timeout(req.timeoutMs), ...(req.signal ? [req.signal] : [])];
  const res = await fetch(url, {
    method: req.method,
    ...(req.body ? { body: new Uint8Array(req.body) } : {}),
    headers: req.contentType ? { 'content-type': req.contentType } : {},
    signal: AbortSignal.any(signals),
    redirect: 'follow',
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      total += chunk.length;
      if (total > req.maxBytes) throw new Error(`response larger than ${req.maxBytes} bytes`);
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
};

export class RevocationCache {
  /** OCSP answers ('ocsp:' + key) and CRLs ('crl:' + url), oldest first. */
  readonly #entries: ByteBoundedMap<{ until: number; body: Buffer }>;
  /** Bounded by bytes, not entries: one CRL can be megabytes, an OCSP answer a few hundred bytes. */
  readonly maxBytes: number;
  constructor(maxBytes = 64 * 1024 * 1024) {
    this.maxBytes = maxBytes;
    this.#entries = new ByteBoundedMap(maxBytes);
  }
  /** Bytes of cached OCSP answers and CRLs. */
  get bytes(): number {
    return this.#entries.bytes;
  }
  getOCSP(key: string): Buffer | undefined {
    return this.#get(`ocsp:${key}`);
  }
  putOCSP(key: string, body: Buffer, until: Date | undefined): void {
    this.#put(`ocsp:${key}`, body, until ?? new Date(Date.now() + 5 * 60_000));
  }
  getCRL(url: string): Buffer | undefined {
    return this.#get(`crl:${url}`);
  }
  putCRL(url: string, body: Buffer, until: Date): void {
    this.#put(`crl:${url}`, body, until);
  }
  #get(k: string): Buffer | undefined {
    const e = this.#entries.get(k);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.#entries.delete(k);
      return undefined;
    }
    return e.body;
  }
  #put(k: string, body: Buffer, until: Date): void {
    this.#entries.set(k, { until: until.getTime(), body }, body.length);
  }
}

// ---------------------------------------------------------------------------------------------

const SIG_HASH: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};
const HASH_OIDS: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Verifies a signature made by `signer` over `tbs` with the given AlgorithmIdentifier. */
function verifySigned(tbs: Uint8Array, alg: pkijs.AlgorithmIdentifier, sig: Uint8Array, signer: Cert): boolean {
  const key = publicKeyOf(signer);
  try {
    if (alg.algorithmId === '1.2.840.113549.1.1.10') {
      const p = new pkijs.RSASSAPSSParams({ schema: alg.algorithmParams });
      const hash = HASH_OIDS[p.hashAlgorithm.algorithmId];
      if (!hash) return false;
      return cryptoVerify(hash, tbs, { key, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: p.saltLength }, sig);
    }
    const hash = SIG_HASH[alg.algorithmId];
    if (!hash) return false;
    return cryptoVerify(hash, tbs, key, sig);
  } catch {
    return false;
  }
}

function serialOf(i: asn1js.Integer): string {
  let b = Buffer.from(i.valueBlock.valueHexView);
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return b.toString('hex');
}

function sha1(b: Uint8Array): Buffer {
  return createHash('sha1').update(b).digest();
}

function ocspRequestDer(cert: Cert, issuer: Cert): Buffer {
  const certId = new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '1.3.14.3.2.26', algorithmParams: new asn1js.Null() }),
    issuerNameHash: new asn1js.OctetString({ valueHex: new Uint8Array(sha1(issuer.rawSubject)).buffer }),
    issuerKeyHash: new asn1js.OctetString({
      valueHex: new Uint8Array(sha1(issuer.pkijs.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)).buffer,
    }),
    serialNumber: cert.pkijs.serialNumber,
  });
  const req = new pkijs.OCSPRequest();
  req.tbsRequest.requestList = [new pkijs.Request({ reqCert: certId })];
  return Buffer.from(req.toSchema(true).toBER(false));
}

interface SingleStatus {
  status: RevocationStatus;
  detail?: string;
  revokedAt?: Date;
  nextUpdate?: Date;
}

const REASON_CERTIFICATE_HOLD = 6;
const REASON_REMOVE_FROM_CRL = 8;

function parseOCSPResponse(body: Buffer, cert: Cert, issuer: Cert, now: Date, signingTime?: Date): SingleStatus {
  const resp = pkijs.OCSPResponse.fromBER(new Uint8Array(body));
  const code = resp.responseStatus.valueBlock.valueDec;
  if (code !== 0) throw new Error(`OCSP responder answered with status ${code}`);
  if (!resp.responseBytes || resp.responseBytes.responseType !== '1.3.6.1.5.5.7.48.1.1') throw new Error('OCSP response is not a basic response');
  const basic = pkijs.BasicOCSPResponse.fromBER(resp.responseBytes.response.valueBlock.valueHexView);
  const tbs = basic.tbsResponseData.tbsView;
  const sig = basic.signature.valueBlock.valueHexView;
  let verified = verifySigned(tbs, basic.signatureAlgorithm, sig, issuer);
  if (!verified) {
    for (const c of basic.certs ?? []) {
      let rc: Cert;
      try {
        rc = parseCertificate(new Uint8Array(c.toSchema().toBER(false)));
      } catch {
        continue;
      }
      if (issuanceError(rc, issuer) === undefined && verifySigned(tbs, basic.signatureAlgorithm, sig, rc)) {
        verified = true;
        break;
      }
    }
  }
  if (!verified) throw new Error('OCSP response signature is not from the issuer or a responder certified by the issuer');
  const serial = cert.serialHex;
  const nameHash = sha1(issuer.rawSubject);
  const single = basic.tbsResponseData.responses.find(
    (r) => serialOf(r.certID.serialNumber) === serial && Buffer.from(r.certID.issuerNameHash.valueBlock.valueHexView).equals(nameHash),
  );
  if (!single) throw new Error('OCSP response does not cover the certificate');
  if (single.nextUpdate && now > single.nextUpdate) throw new Error(`OCSP response expired at ${single.nextUpdate.toISOString()}`);
  const tag = (single.certStatus as asn1js.BaseBlock).idBlock.tagNumber;
  const nextUpdate = single.nextUpdate;
  const base = nextUpdate ? { nextUpdate } : {};
  if (tag === 0) return { status: 'ok', ...base };
  if (tag === 2) return { status: 'unknown', detail: 'the OCSP responder does not know the certificate', ...base };
  // Revoked: RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  let revokedAt: Date | undefined;
  const inner = (single.certStatus as asn1js.Constructed).valueBlock?.value ?? [];
  const t0 = inner[0];
  if (t0 instanceof asn1js.GeneralizedTime) revokedAt = t0.toDate();
  const inv = single.singleExtensions?.find((e) => e.extnID === '2.5.29.24');
  if (inv && signingTime) {
    const a = asn1js.fromBER(inv.extnValue.valueBlock.valueHexView);
    if (a.result instanceof asn1js.GeneralizedTime && signingTime < a.result.toDate()) return { status: 'ok', ...base };
  }
  return { status: 'revoked', ...(revokedAt ? { revokedAt } : {}), ...base };
}

function checkCRL(body: Buffer, cert: Cert, issuer: Cert, now: Date, signingTime?: Date): SingleStatus & { nextUpdate: Date } {
  const crl = pkijs.CertificateRevocationList.fromBER(new Uint8Array(body));
  if (!verifySigned(crl.tbsView, crl.signatureAlgorithm, crl.signatureValue.valueBlock.valueHexView, issuer)) {
    throw new Error('CRL is not signed by the certificate issuer');
  }
  if (!Buffer.from(crl.issuer.valueBeforeDecode).equals(issuer.rawSubject)) throw new Error('CRL issuer does not match the certificate issuer');
  const nextUpdate = crl.nextUpdate?.value;
  if (!nextUpdate) throw new Error('CRL has no nextUpdate');
  if (now > nextUpdate) throw new Error(`CRL expired at ${nextUpdate.toISOString()}`);
  for (const e of crl.crlExtensions?.extensions ?? []) {
    if (e.critical && e.extnID !== '2.5.29.20' && e.extnID !== '2.5.29.35') throw new Error(`CRL has an unsupported critical extension ${e.extnID}`);
  }
  for (const entry of crl.revokedCertificates ?? []) {
    if (serialOf(entry.userCertificate) !== cert.serialHex) continue;
    let reason: number | undefined;
    let invalidity: Date | undefined;
    for (const ext of entry.crlEntryExtensions?.extensions ?? []) {
      const a = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result;
      if (ext.extnID === '2.5.29.21' && a instanceof asn1js.Enumerated) reason = a.valueBlock.valueDec;
      if (ext.extnID === '2.5.29.24' && a instanceof asn1js.GeneralizedTime) invalidity = a.toDate();
      if (ext.critical && ext.extnID !== '2.5.29.21' && ext.extnID !== '2.5.29.24') throw new Error(`CRL entry has an unsupported critical extension ${ext.extnID}`);
    }
    if (reason === REASON_REMOVE_FROM_CRL) continue;
    if (reason !== REASON_CERTIFICATE_HOLD && invalidity && signingTime && signingTime < invalidity) continue;
    return { status: 'revoked', revokedAt: entry.revocationDate.value, nextUpdate };
  }
  return { status: 'ok', nextUpdate };
}

async function checkOne(cert: Cert, issuer: Cert, opts: Required<Pick<RevocationOptions, 'fetch' | 'timeoutMs' | 'now'>> & RevocationOptions): Promise<CertRevocationResult> {
  const ext = certExtensions(cert);
  const ocspUrls = ext.ocspUrls;
  const crlUrls = ext.crlUrls;
  const reasons: string[] = [];
  if (ocspUrls.length > 0) {
    const reqDer = ocspRequestDer(cert, issuer);
    for (const url of ocspUrls) {
      if (!url.startsWith('http://')) {
        reasons.push(`OCSP ${url}: only http:// OCSP URLs are supported`);
        continue;
      }
      const key = `${issuer.sha256}/${cert.serialHex}/${url}`;
      try {
        let body = opts.cache?.getOCSP(key);
        if (!body) {
          const b64 = reqDer.toString('base64');
          body =
            b64.length < 255
              ? await opts.fetch(`${url.replace(/\/$/, '')}/${encodeURIComponent(b64)}`, { method: 'GET', timeoutMs: opts.timeoutMs, maxBytes: OCSP_MAX, ...(opts.signal ? { signal: opts.signal } : {}) })
              : await opts.fetch(url, { method: 'POST', body: reqDer, contentType: 'application/ocsp-request', timeoutMs: opts.timeoutMs, maxBytes: OCSP_MAX, ...(opts.signal ? { signal: opts.signal } : {}) });
        }
        const st = parseOCSPResponse(body, cert, issuer, opts.now, opts.signingTime);
        if (st.status !== 'unknown') opts.cache?.putOCSP(key, body, st.nextUpdate);
        if (st.status === 'revoked') return { subject: cert.subject, status: 'revoked', method: 'ocsp', ...(st.revokedAt ? { revokedAt: st.revokedAt } : {}), detail: `OCSP ${url}` };
        if (st.status === 'ok') return { subject: cert.subject, status: 'ok', method: 'ocsp' };
        reasons.push(`OCSP ${url}: ${st.detail}`);
        break;
      } catch (e) {
        reasons.push(`OCSP ${url}: ${(e as Error).message}`);
      }
    }
    if (crlUrls.length === 0) return { subject: cert.subject, status: 'unknown', method: 'ocsp', detail: reasons.join('; ') };
  }
  if (crlUrls.length > 0) {
    for (const url of crlUrls) {
      if (!url.startsWith('http://')) {
        reasons.push(`CRL ${url}: only http:// CRL URLs are supported`);
        continue;
      }
      try {
        let body = opts.cache?.getCRL(url);
        const fromCache = body !== undefined;
        body ??= await opts.fetch(url, { method: 'GET', timeoutMs: opts.timeoutMs, maxBytes: CRL_MAX, ...(opts.signal ? { signal: opts.signal } : {}) });
        const st = checkCRL(body, cert, issuer, opts.now, opts.signingTime);
        if (!fromCache) opts.cache?.putCRL(url, body, st.nextUpdate);
        if (st.status === 'revoked') return { subject: cert.subject, status: 'revoked', method: 'crl', ...(st.revokedAt ? { revokedAt: st.revokedAt } : {}), detail: `CRL ${url}` };
        return { subject: cert.subject, status: 'ok', method: 'crl' };
      } catch (e) {
        reasons.push(`CRL ${url}: ${(e as Error).message}`);
      }
    }
    return { subject: cert.subject, status: 'unknown', method: 'crl', detail: reasons.join('; ') };
  }
  return { subject: cert.subject, status: 'nonRevokable', method: 'none' };
}

export async function checkChainRevocation(chain: Cert[], opts: RevocationOptions = {}): Promise<ChainRevocationResult> {
  const o = { ...opts, fetch: opts.fetch ?? defaultHttpFetcher, timeoutMs: opts.timeoutMs ?? 2000, now: opts.now ?? new Date() };
  const results = await Promise.all(
    chain.map(async (cert, i): Promise<CertRevocationResult> => {
      const issuer = chain[i + 1];
      if (!issuer) return { subject: cert.subject, status: 'nonRevokable', method: 'none' };
      try {
        return await checkOne(cert, issuer, o);
      } catch (e) {
        return { subject: cert.subject, status: 'unknown', method: 'none', detail: (e as Error).message };
      }
    }),
  );
  const revoked = results.find((r) => r.status === 'revoked');
  if (revoked) return { status: 'revoked', certs: results, message: `certificate with subject "${revoked.subject}" is revoked` };
  const unknown = results.find((r) => r.status === 'unknown');
  if (unknown) {
    return {
      status: 'unknown',
      certs: results,
      message: `revocation status of certificate with subject "${unknown.subject}" is unknown: revocation could not be checked (${unknown.detail ?? 'no answer'})`,
    };
  }
  return { status: 'ok', certs: results };
}
