// A minimal DER walker for looking at a structure's shape before handing it to pkijs, whose parsing of a
// large structure is slow enough to stall the event loop: e.g. counting the certificates of a CMS token
// (bounded by a budget) without parsing any of them. And the one DER encoding we do: ECDSA signatures
// in the form node:crypto checks fastest.

export interface TLV {
  /** Identifier octet (class, constructed bit, tag number < 31). */
  tag: number;
  /** Offset of the content octets. */
  start: number;
  /** Offset just past the content octets. */
  end: number;
}

/** The TLV at `offset` in `b`, or undefined when it is truncated or uses forms DER does not allow. */
export function readTLV(b: Uint8Array, offset: number, limit = b.length): TLV | undefined {
  if (offset + 2 > limit) return undefined;
  const tag = b[offset]!;
  if ((tag & 0x1f) === 0x1f) return undefined; // high tag numbers: not used in these structures
  let len = b[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, start, end } : undefined;
}

/** The TLVs directly inside a constructed TLV. */
export function childrenOf(b: Uint8Array, parent: TLV): TLV[] {
  const out: TLV[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTLV(b, at, parent.end);
    if (!t) break;
    out.push(t);
    at = t.end;
  }
  return out;
}

/**
 * The longest OBJECT IDENTIFIER (content bytes) under `root`, found without parsing: asn1js
 * decodes an OID arc by arc, so a 200,000-arc OID holds the event loop for seconds. Walks
 * constructed TLVs and OCTET STRINGs that wrap one (CMS eContent), iteratively.
 */
export function longestOID(b: Uint8Array, root: TLV): number {
  let longest = 0;
  const stack: TLV[] = [root];
  for (let t = stack.pop(); t; t = stack.pop()) {
    if (t.tag === 0x06) {
      longest = Math.max(longest, t.end - t.start);
      continue;
    }
    const wrapped = t.tag === 0x04 ? readTLV(b, t.start, t.end) : undefined;
    if ((t.tag & 0x20) === 0 && !(wrapped && wrapped.end === t.end && (wrapped.tag & 0x20) !== 0)) continue;
    stack.push(...childrenOf(b, (t.tag & 0x20) !== 0 ? t : { tag: 0x30, start: t.start, end: t.end }));
  }
  return longest;
}

/** An ECDSA signature r || s (IEEE P1363, halves of equal length) as DER `SEQUENCE { INTEGER r, INTEGER s }`. */
export function p1363ToDER(sig: Uint8Array): Buffer {
  const half = sig.length / 2;
  const r = derInteger(sig.subarray(0, half));
  const s = derInteger(sig.subarray(half));
  const len = r.length + s.length;
  // P-521's halves of 66 bytes make the body 128 bytes or more: the long length form.
  return Buffer.concat([len < 0x80 ? Buffer.of(0x30, len) : Buffer.of(0x30, 0x81, len), r, s]);
}

function derInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const v = magnitude.subarray(i);
  // A set top bit would read as negative: a zero byte keeps the integer positive.
  return v[0]! & 0x80 ? Buffer.concat([Buffer.of(0x02, v.length + 1, 0), v]) : Buffer.concat([Buffer.of(0x02, v.length), v]);
}
