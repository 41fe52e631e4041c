// Summarises a V8 .heapsnapshot: self size by constructor (objects) or by node type (strings,
// code, arrays, closures…), which is where "what is the heap made of" starts; then the strings
// by what they look like (digits and hex folded), which says whose strings they are.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapSummary {
  totalBytes: number;
  nodes: number;
  top: { name: string; bytes: number; count: number }[];
  strings: { name: string; bytes: number; count: number }[];
}

/** A string's look: digits and hex runs folded, the start only, so copies of one message group together. */
function lookOf(text: string): string {
  return JSON.stringify(text.replace(/[0-9a-f]{8,}/g, '<hex>').replace(/\d+/g, '0').slice(0, 70));
}

export function summariseHeap(file: string, top = 25): HeapSummary {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const agg = new Map<string, { bytes: number; count: number }>();
  const looks = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += nf) {
    const type = types[s.nodes[i + iType]!]!;
    const size = s.nodes[i + iSize]!;
    total += size;
    // Objects by constructor; everything else by its kind (one bucket per kind keeps it readable).
    const key = type === 'object' || type === 'native' ? s.strings[s.nodes[i + iName]!]! : type === 'closure' ? '(closures)' : `(${type})`;
    const e = agg.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    agg.set(key, e);
    if (type === 'string') {
      const look = lookOf(s.strings[s.nodes[i + iName]!]!);
      const l = looks.get(look) ?? { bytes: 0, count: 0 };
      l.bytes += size;
      l.count++;
      looks.set(look, l);
    }
  }
  const sorted = [...agg].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top).map(([name, v]) => ({ name, ...v }));
  const strings = [...looks].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 15).map(([name, v]) => ({ name, ...v }));
  return { totalBytes: total, nodes: s.nodes.length / nf, top: sorted, strings };
}

export function printHeap(h: HeapSummary): void {
  console.log(`  heap snapshot: ${(h.totalBytes / 2 ** 20).toFixed(1)} MB in ${h.nodes} objects; largest by self size:`);
  for (const r of h.top) console.log(`    ${(r.bytes / 2 ** 20).toFixed(2).padStart(8)} MB ${String(r.count).padStart(8)}  ${r.name}`);
  console.log('  strings by what they look like (digits and hex folded):');
  for (const r of h.strings) console.log(`    ${(r.bytes / 2 ** 20).toFixed(2).padStart(8)} MB ${String(r.count).padStart(8)}  ${r.name}`);
}
