/**
 * RFC 6962 embedded Signed Certificate Timestamps. The precertificate the CT log signed is rebuilt from the
 * certificate's own TBS bytes with the SCT extension cut out (byte for byte, nothing re-encoded); the SCT
 * list's TLS encoding and the signature check are @sigstore/core's.
 *
 * Exported API:
 * - `embeddedSCTs(cert)` — the SCTs of the certificate and the precertificate TBS they sign, or undefined
 *   when the certificate has no SCT extension. Throws when the extension does not parse.
 * - `OID_SCT_LIST`.
 */
import * as asn1js from 'asn1js';
import { ASN1Obj, X509SCTExtension } from '@sigstore/core';
import type { Cert } from './certs.ts';

export const OID_SCT_LIST = '1.3.6.1.4.1.11129.2.4.2';

type SCT = X509SCTExtension['signedCertificateTimestamps'][number];

function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthOctets(body.length), body]);
}

function raw(b: asn1js.BaseBlock): Buffer {
  return Buffer.from(b.valueBeforeDecodeView);
}

export function embeddedSCTs(cert: Cert): { scts: SCT[]; precertTBS: Buffer } | undefined {
  const tbs = asn1js.fromBER(new Uint8Array(cert.pkijs.tbsView).buffer);
  if (tbs.offset === -1 || !(tbs.result instanceof asn1js.Sequence)) throw new Error('the certificate TBS does not parse');
  let sctExtension: Buffer | undefined;
  const fields = tbs.result.valueBlock.value.map((f) => {
    // extensions [3] EXPLICIT SEQUENCE OF Extension
    if (f.idBlock.tagClass !== 3 || f.idBlock.tagNumber !== 3) return raw(f);
    const list = (f as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence | undefined;
    const kept: Buffer[] = [];
    for (const ext of list?.valueBlock.value ?? []) {
      const oid = (ext as asn1js.Sequence).valueBlock.value[0];
      if (oid instanceof asn1js.ObjectIdentifier && oid.valueBlock.toString() === OID_SCT_LIST) sctExtension = raw(ext);
      else kept.push(raw(ext));
    }
    return tlv(0xa3, tlv(0x30, Buffer.concat(kept)));
  });
  if (!sctExtension) return undefined;
  const scts = new X509SCTExtension(ASN1Obj.parseBuffer(Buffer.from(sctExtension))).signedCertificateTimestamps;
  return { scts, precertTBS: tlv(0x30, Buffer.concat(fields)) };
}
