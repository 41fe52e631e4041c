// Summarises a V8 .heapsnapshot: self size by constructor (objects) or by node type (strings,
// code, arrays, closures…), which is where "what is the heap made of" starts.
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
  }
  const sorted = [...agg].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top).map(([name, v]) => ({ name, ...v }));
  return { totalBytes: total, nodes: s.nodes.length / nf, top: sorted };
}

export function printHeap(h: HeapSummary): void {
  console.log(`  heap snapshot: ${(h.totalBytes / 2 ** 20).toFixed(1)} MB in ${h.nodes} objects; largest by self size:`);
  for (const r of h.top) console.log(`    ${(r.bytes / 2 ** 20).toFixed(2).padStart(8)} MB ${String(r.count).padStart(8)}  ${r.name}`);
}
