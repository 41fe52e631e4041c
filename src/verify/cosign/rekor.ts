import { json as sjson, crypto as scrypto } from '@sigstore/core';
import type { TrustMaterial } from '@sigstore/verify';
import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { fail, VerificationError } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import { parseCertificate, publicKeyOf } from '../x509/certs.ts';
import { decodeBase64, pemBlocks, sha256Hex } from './encoding.ts';

type TLogAuthority = TrustMaterial['tlogs'][number];

/** The `dev.sigstore.cosign/bundle` annotation: a Rekor SignedEntryTimestamp and its payload. */
export interface RekorBundle {
  set: Buffer;
  /** Base64 of the canonical Rekor entry, exactly as in the annotation. */
  body: string;
  integratedTime: number;
  logIndex: number;
  /** Hex SHA-256 of the Rekor key's SPKI. */
  logID: string;
}

export function parseRekorBundle(text: string): RekorBundle {
  let v: unknown;
  try {
    v = parseJSON(text, 'Rekor bundle annotation', DefaultLimits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    fail('malformed', 'Rekor bundle annotation is not valid JSON');
  }
  const o = v as { SignedEntryTimestamp?: unknown; Payload?: Record<string, unknown> } | null;
  const p = o?.Payload;
  if (typeof o?.SignedEntryTimestamp !== 'string' || typeof p !== 'object' || p === null) {
    fail('malformed', 'Rekor bundle annotation lacks SignedEntryTimestamp or Payload');
  }
  const { body, integratedTime, logIndex, logID } = p;
  if (typeof body !== 'string' || !Number.isSafeInteger(integratedTime) || !Number.isSafeInteger(logIndex) ||
      typeof logID !== 'string' || !/^[0-9a-f]{64}$/.test(logID)) {
    fail('malformed', 'Rekor bundle payload must have body (string), integratedTime, logIndex (integers) and a hex logID');
  }
  return {
    set: decodeBase64(o.SignedEntryTimestamp, 'Rekor SignedEntryTimestamp'),
    body,
    integratedTime: integratedTime as number,
    logIndex: logIndex as number,
    logID,
  };
}

/**
 * cosign `VerifySET`: ECDSA signature of the Rekor key whose logID matches, over the RFC 8785
 * canonical JSON of {body, integratedTime, logIndex, logID}. The key must be valid at
 * integratedTime. Returns the log that signed.
 */
export function verifySET(b: RekorBundle, tlogs: TLogAuthority[]): TLogAuthority {
  const logID = Buffer.from(b.logID, 'hex');
  const at = new Date(b.integratedTime * 1000);
  const candidates = tlogs.filter((t) => t.logID.equals(logID));
  if (candidates.length === 0) {
    fail('rekor-set-invalid', `Rekor log ${b.logID} is not in the trusted root`);
  }
  const data = Buffer.from(
    sjson.canonicalize({ body: b.body, integratedTime: b.integratedTime, logIndex: b.logIndex, logID: b.logID }),
    'utf8',
  );
  for (const t of candidates) {
    if (at < t.validFor.start || at > t.validFor.end) continue;
    let ok = false;
    try {
      ok = scrypto.verify(data, t.publicKey, b.set, 'sha256');
    } catch {
      ok = false;
    }
    if (ok) return t;
  }
  return fail('rekor-set-invalid', `Rekor SignedEntryTimestamp does not verify with the key of log ${b.logID} valid at ${at.toISOString()}`);
}

/** What the Rekor entry must bind. */
export interface RekorBinding {
  signature: Buffer;
  payload: Buffer;
  /** Key mode: the SPKI of the key that verified. Keyless: unused. */
  spki?: Buffer;
  /** Keyless: the leaf certificate DER. */
  certDer?: Buffer;
}

/**
 * cosign `VerifyBundle` body checks: the entry (hashedrekord or rekord 0.0.1) carries the same
 * signature, the SHA-256 of the payload, and the same public key or certificate.
 */
export function verifyRekorBody(b: RekorBundle, bind: RekorBinding): { kind: string } {
  let entry: unknown;
  try {
    entry = parseJSON(decodeBase64(b.body, 'Rekor entry body'), 'Rekor entry body', DefaultLimits.maxJSONDepth);
  } catch (err) {
    if (err instanceof VerificationError || err instanceof LimitError) throw err;
    fail('malformed', 'Rekor entry body is not valid JSON');
  }
  const e = entry as {
    kind?: unknown; apiVersion?: unknown;
    spec?: { data?: { hash?: { algorithm?: unknown; value?: unknown } };
      signature?: { content?: unknown; publicKey?: { content?: unknown } } };
  };
  const kind = `${String(e.kind)} ${String(e.apiVersion)}`;
  if ((e.kind !== 'hashedrekord' && e.kind !== 'rekord') || e.apiVersion !== '0.0.1') {
    fail('tlog-body-mismatch', `unsupported Rekor entry kind ${kind} (want hashedrekord or rekord 0.0.1)`);
  }
  const hash = e.spec?.data?.hash;
  if (hash?.algorithm !== 'sha256' || hash.value !== sha256Hex(bind.payload)) {
    fail('tlog-body-mismatch', 'Rekor entry hash does not match the SHA-256 of the payload');
  }
  const sig = e.spec?.signature?.content;
  if (typeof sig !== 'string' || !decodeBase64(sig, 'Rekor entry signature').equals(bind.signature)) {
    fail('tlog-body-mismatch', 'Rekor entry signature differs from the signature annotation');
  }
  const pk = e.spec?.signature?.publicKey?.content;
  if (typeof pk !== 'string') fail('tlog-body-mismatch', 'Rekor entry has no public key');
  const blocks = pemBlocks(decodeBase64(pk, 'Rekor entry public key').toString('utf8'));
  const first = blocks[0];
  if (!first) fail('tlog-body-mismatch', 'Rekor entry public key is not PEM');
  if (bind.certDer) {
    if (first.type !== 'CERTIFICATE' || !first.der.equals(bind.certDer)) {
      fail('key-mismatch', 'Rekor entry certificate differs from the signing certificate');
    }
  } else if (bind.spki) {
    let spki: Buffer | undefined;
    if (first.type === 'PUBLIC KEY') spki = first.der;
    else if (first.type === 'CERTIFICATE') {
      try {
        spki = Buffer.from(publicKeyOf(parseCertificate(first.der)).export({ format: 'der', type: 'spki' }));
      } catch {
        spki = undefined;
      }
    }
    if (!spki || !spki.equals(bind.spki)) fail('key-mismatch', 'Rekor entry public key differs from the verifying key');
  }
  return { kind };
}
