// JSON from registries, signatures and Secrets: JSON.parse has no nesting bound, so the depth is
// checked first with one linear pass over the text (strings skipped), and a budget hit names the budget.
import { LimitError } from '../api/limits.ts';

/** The deepest nesting of `[`/`{` in `text`, stopping as soon as it passes `max`. */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * JSON.parse of UTF-8 bytes or text after the depth check. Throws LimitError (budget `maxJSONDepth`)
 * or JSON.parse's SyntaxError, which callers turn into their own failure.
 */
export function parseJSON(input: Uint8Array | string, what: string, maxDepth: number): unknown {
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  if (jsonDepthExceeds(text, maxDepth)) throw new LimitError('maxJSONDepth', `${what} nests JSON deeper than ${maxDepth} levels`);
  return JSON.parse(text);
}

/**
 * A deep copy of JSON data (objects, arrays, strings, numbers, booleans, null), as the apiserver
 * sends it. A tenth of structuredClone's cost for a status: no serialisation round trip.
 */
export function cloneJSON<T>(v: T): T {
  if (Array.isArray(v)) return v.map(cloneJSON) as T;
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const c = cloneJSON((v as Record<string, unknown>)[k]);
    // JSON.parse makes "__proto__" an own key; assigning it would set the copy's prototype instead.
    if (k === '__proto__') Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    else out[k] = c;
  }
  return out as T;
}
