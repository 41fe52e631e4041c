// JWS and COSE carry ECDSA signatures as r || s; the verifier hands node:crypto their DER form.
// DER is canonical, so the conversion must give exactly the bytes OpenSSL itself produces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import { p1363ToDER } from '../../../src/verify/x509/der.ts';

/** r || s from a DER signature, each half left-padded to `size` bytes. */
function p1363Of(der: Buffer, size: number): Buffer {
  const seq = asn1js.fromBER(new Uint8Array(der).buffer).result as asn1js.Sequence;
  const half = (i: number) => {
    let v = Buffer.from((seq.valueBlock.value[i] as asn1js.Integer).valueBlock.valueHexView);
    while (v.length > size) v = v.subarray(1);
    return Buffer.concat([Buffer.alloc(size - v.length), v]);
  };
  return Buffer.concat([half(0), half(1)]);
}

for (const [curve, size] of [['prime256v1', 32], ['secp384r1', 48], ['secp521r1', 66]] as const) {
  test(`${curve}: r || s becomes OpenSSL's own DER, byte for byte, and verifies`, () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    let topBitSet = 0;
    let leadingZero = 0;
    // Enough signatures that an r whose first significant byte has the top bit set (a zero byte
    // must be added) and one with a leading zero byte (to be dropped) both occur.
    for (let i = 0; i < 1500; i++) {
      const msg = Buffer.from(`message ${i}`);
      const der = sign('sha256', msg, privateKey);
      const raw = p1363Of(der, size);
      const significant = raw.subarray(0, size).find((b) => b !== 0) ?? 0;
      if (significant & 0x80) topBitSet++;
      if (raw[0] === 0) leadingZero++;
      assert.deepEqual(p1363ToDER(raw), der);
      assert.ok(verify('sha256', msg, publicKey, p1363ToDER(raw)));
    }
    assert.ok(topBitSet > 0 && leadingZero > 0, `cases covered: top bit ${topBitSet}, leading zero ${leadingZero}`);
  });
}

test('a signature of the wrong key or a flipped byte does not verify through the conversion', () => {
  const a = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const b = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const msg = Buffer.from('m');
  const raw = sign('sha256', msg, { key: a.privateKey, dsaEncoding: 'ieee-p1363' });
  assert.ok(verify('sha256', msg, a.publicKey, p1363ToDER(raw)));
  assert.ok(!verify('sha256', msg, b.publicKey, p1363ToDER(raw)));
  const flipped = Buffer.from(raw);
  flipped[40]! ^= 1;
  assert.ok(!verify('sha256', msg, a.publicKey, p1363ToDER(flipped)));
});
