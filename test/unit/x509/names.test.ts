// The string decoding every identity comparison relies on (#7 item 4): different inputs never become the
// same text, and malformed ones are errors, not U+FFFD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeDirectoryString, decodeUTF8Bytes, encodeUTF8Bytes, hasLoneSurrogate } from '../../../src/verify/x509/names.ts';
import { parseDistinguishedName, parseTrustPolicy, validateTrustPolicy } from '../../../src/verify/notation/trustpolicy.ts';

const utf32 = (...cps: number[]) => Buffer.concat(cps.map((c) => { const b = Buffer.alloc(4); b.writeUInt32BE(c); return b; }));

test('UTF8String: astral characters kept, invalid UTF-8 refused', () => {
  assert.equal(decodeDirectoryString(12, Buffer.from('Acme \u{1F512}')), 'Acme \u{1F512}');
  assert.throws(() => decodeDirectoryString(12, Buffer.from([0x41, 0xff])), /not valid UTF-8/);
});

test('UniversalString: whole code points (not their low 16 bits); surrogates and values past U+10FFFF refused', () => {
  assert.equal(decodeDirectoryString(28, utf32(0x1f512)), '\u{1F512}');
  assert.notEqual(decodeDirectoryString(28, utf32(0x1f512)), decodeDirectoryString(28, utf32(0xf512)));
  assert.throws(() => decodeDirectoryString(28, utf32(0xd83d)), /invalid code point/);
  assert.throws(() => decodeDirectoryString(28, utf32(0x110000)), /invalid code point/);
  assert.throws(() => decodeDirectoryString(28, Buffer.from([0, 0, 0x41])), /multiple of 4/);
});

test('BMPString: UCS-2 with surrogate pairs; an unpaired surrogate or an odd length refused', () => {
  assert.equal(decodeDirectoryString(30, Buffer.from([0, 0x41, 0xd8, 0x3d, 0xdd, 0x12])), 'A\u{1F512}');
  assert.throws(() => decodeDirectoryString(30, Buffer.from([0xd8, 0x3d, 0, 0x41])), /unpaired surrogate/);
  assert.throws(() => decodeDirectoryString(30, Buffer.from([0, 0x41, 0])), /odd length/);
});

test('PrintableString / IA5String: their alphabets only', () => {
  assert.equal(decodeDirectoryString(19, Buffer.from('Acme Inc.')), 'Acme Inc.');
  assert.throws(() => decodeDirectoryString(19, Buffer.from('a@b')), /alphabet/);
  assert.throws(() => decodeDirectoryString(22, Buffer.from([0x61, 0xe9])), /non-ASCII/);
});

test('T61String keeps its bytes as Go does: UTF-8 compares as text, other bytes stay distinct and never equal text', () => {
  assert.equal(decodeDirectoryString(20, Buffer.from('Müller')), 'Müller');
  const latin1 = decodeDirectoryString(20, Buffer.from('M\xfcller', 'latin1'));
  assert.notEqual(latin1, 'Müller');
  assert.ok(hasLoneSurrogate(latin1));
  assert.notEqual(decodeDirectoryString(20, Buffer.from([0xfc])), decodeDirectoryString(20, Buffer.from([0xfd])));
});

test('decodeUTF8Bytes / encodeUTF8Bytes round-trip any bytes', () => {
  for (const b of [Buffer.from('plain'), Buffer.from([0xff, 0xfe, 0x41]), Buffer.from([0xe2, 0x82]), Buffer.from('é\u{1F512}'), Buffer.from([0xed, 0xa0, 0x80])]) {
    assert.deepEqual(encodeUTF8Bytes(decodeUTF8Bytes(b)), b);
  }
});

test('policy DNs: hex escapes are bytes (distinct when the bytes differ), astral characters survive', () => {
  const dn = (v: string) => parseDistinguishedName(`C=US,ST=WA,O=${v}`).get('O');
  assert.equal(dn('Acme \u{1F512} Release'), 'Acme \u{1F512} Release');
  assert.notEqual(dn('Acme \u{1F512}'), dn('Acme \u{1F47E}'));
  assert.notEqual(dn('\\ff'), dn('\\fe'));
  assert.equal(dn('\\c3\\bc'), 'ü');
});

test('a trusted identity that is not valid Unicode is refused when the policy is loaded', () => {
  const doc = parseTrustPolicy(JSON.stringify({
    version: '1.0',
    trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:s'], trustedIdentities: ['x509.subject:C=US,ST=WA,O=\ud83d'] }],
  }));
  assert.throws(() => validateTrustPolicy(doc), /not valid Unicode/);
});
