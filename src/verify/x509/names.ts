/**
 * Distinguished names and the ASN.1 string types in them, decoded so that two names compare equal exactly
 * when their characters are equal (RFC 5280 §4.1.2.4, RFC 4514). Identity checks (notation's x509.subject,
 * cosign's SANs and issuer) compare the strings made here, so a decoder that maps two different values to
 * one string (U+FFFD for every bad byte or astral character, dropped planes) lets one name pass for another.
 *
 * Exported API:
 * - `decodeDirectoryString(tag, bytes)` — the text of a UTF8String, PrintableString, IA5String,
 *   NumericString, VisibleString, BMPString (UCS-2 big-endian), UniversalString (UTF-32 big-endian) or
 *   T61String (bytes, as Go keeps them). Throws on malformed content instead of substituting characters.
 * - `decodeUTF8Bytes(bytes)` — UTF-8 where valid; each byte of an invalid sequence becomes the lone
 *   surrogate U+DC80..U+DCFF ("surrogateescape"), so distinct byte strings stay distinct and never equal
 *   well-formed text. `encodeUTF8Bytes` is its inverse.
 * - `decodeUTF8Strict(bytes, what)` — UTF-8 or an error.
 * - `hasLoneSurrogate(s)` — true for text that is not valid Unicode.
 * - `goNameString(name)` — Go's `pkix.Name.String()` for a pkijs name (what notation-go matches and prints).
 */
import * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';

const fatal = new TextDecoder('utf-8', { fatal: true });

export function decodeUTF8Strict(bytes: Uint8Array, what: string): string {
  try {
    return fatal.decode(bytes);
  } catch {
    throw new Error(`${what} is not valid UTF-8`);
  }
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xe0 && c1 < 0xa0) return 0; // overlong
    if (c === 0xed && c1 >= 0xa0) return 0; // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xf0 && c1 < 0x90) return 0; // overlong
    if (c === 0xf4 && c1 >= 0x90) return 0; // above U+10FFFF
    return 4;
  }
  return 0;
}

export function decodeUTF8Bytes(b: Uint8Array): string {
  let out = '';
  let start = 0;
  let i = 0;
  while (i < b.length) {
    const n = utf8SequenceLength(b, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += fatal.decode(b.subarray(start, i)) + String.fromCharCode(0xdc00 + b[i]!);
    i++;
    start = i;
  }
  return out + fatal.decode(b.subarray(start, i));
}

/** Inverse of decodeUTF8Bytes: UTF-8, with U+DC80..U+DCFF written back as the byte they stand for. */
export function encodeUTF8Bytes(s: string): Buffer {
  if (!hasLoneSurrogate(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    parts.push(cp >= 0xdc80 && cp <= 0xdcff && ch.length === 1 ? Buffer.from([cp - 0xdc00]) : Buffer.from(ch, 'utf8'));
  }
  return Buffer.concat(parts);
}

/** In `u` mode a surrogate range only matches surrogates that are not part of a pair. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?*&]*$/; // Go also accepts '*' and '&' (seen in the wild)
const NUMERIC = /^[0-9 ]*$/;

function ascii(bytes: Uint8Array, what: string, re?: RegExp): string {
  for (const c of bytes) if (c >= 0x80) throw new Error(`${what} holds a non-ASCII byte`);
  const s = Buffer.from(bytes).toString('latin1');
  if (re && !re.test(s)) throw new Error(`${what} holds characters outside its alphabet`);
  return s;
}

/** Text of a string-typed ASN.1 value (universal class tag `tag`, content octets `bytes`). */
export function decodeDirectoryString(tag: number, bytes: Uint8Array): string {
  switch (tag) {
    case 12:
      return decodeUTF8Strict(bytes, 'UTF8String');
    case 19:
      return ascii(bytes, 'PrintableString', PRINTABLE);
    case 22:
      return ascii(bytes, 'IA5String');
    case 18:
      return ascii(bytes, 'NumericString', NUMERIC);
    case 26:
      return ascii(bytes, 'VisibleString');
    case 20:
      // T61String: Go keeps the bytes as they are; valid UTF-8 compares as text, anything else never
      // equals well-formed text.
      return decodeUTF8Bytes(bytes);
    case 30: {
      // BMPString: UCS-2. Surrogate pairs are accepted (Go's utf16.Decode does); a lone surrogate is an
      // error here where Go would substitute U+FFFD.
      if (bytes.length % 2 !== 0) throw new Error('BMPString has an odd length');
      let s = '';
      for (let i = 0; i < bytes.length; i += 2) s += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
      if (hasLoneSurrogate(s)) throw new Error('BMPString holds an unpaired surrogate');
      return s;
    }
    case 28: {
      // UniversalString: UCS-4 big-endian, whole code points (asn1js kept only the low 16 bits).
      if (bytes.length % 4 !== 0) throw new Error('UniversalString length is not a multiple of 4');
      let s = '';
      for (let i = 0; i < bytes.length; i += 4) {
        const cp = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new Error(`UniversalString holds an invalid code point U+${cp.toString(16).toUpperCase()}`);
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      throw new Error(`unsupported ASN.1 string type (tag ${tag})`);
  }
}

/** Text of an attribute value held by asn1js (a primitive, universal-class string). */
export function attributeValueText(v: asn1js.AsnType): string {
  const b = v as asn1js.BaseBlock;
  if (b.idBlock.tagClass !== 1 || b.idBlock.isConstructed) throw new Error('attribute value is not a primitive ASN.1 string');
  return decodeDirectoryString(b.idBlock.tagNumber, (b.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView);
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

const GO_PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Go re-marshals an unknown attribute's string: PrintableString when it can, else UTF8String. */
function goMarshalStringHex(s: string): string {
  const body = encodeUTF8Bytes(s);
  const tag = GO_PRINTABLE.test(s) ? 19 : 12;
  const len = body.length < 0x80 ? Buffer.from([body.length]) : body.length < 0x100 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]).toString('hex');
}

/** Go's `pkix.Name.String()` for a pkijs name. Throws when a value is not a well-formed string. */
export function goNameString(name: pkijs.RelativeDistinguishedNames): string {
  const atvs = name.typesAndValues.map((t) => ({ type: t.type, value: attributeValueText(t.value) }));
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
