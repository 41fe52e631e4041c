// The whole corpus: every case generator, in one list. HOSTILE_ONLY (a regular expression on case
// ids) narrows a run while working on one area.
import { chainCases } from './cases/chain.ts';
import { descriptorCases } from './cases/descriptor.ts';
import { envelopeCases } from './cases/envelope.ts';
import { httpCases } from './cases/http.ts';
import { itemCases } from './cases/items.ts';
import { manifestCases } from './cases/manifest.ts';
import { referrerCases } from './cases/referrers.ts';
import { secretCases } from './cases/secret.ts';
import { tagCases } from './cases/tags.ts';
import { tarballCases } from './cases/tarball.ts';
import type { Category, HostileCase } from './types.ts';

export function corpus(): HostileCase[] {
  const all = [...manifestCases(), ...descriptorCases(), ...tarballCases(), ...envelopeCases(), ...chainCases(), ...tagCases(), ...referrerCases(), ...secretCases(), ...httpCases(), ...itemCases()];
  const ids = new Set<string>();
  for (const c of all) {
    if (ids.has(c.id)) throw new Error(`duplicate case id ${c.id}`);
    if (!/^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$/.test(c.id)) throw new Error(`case id ${c.id} is not a DNS-1123 label of at most 52 characters`);
    ids.add(c.id);
  }
  const only = process.env.HOSTILE_ONLY;
  return only ? all.filter((c) => new RegExp(only).test(c.id)) : all;
}

export function countByCategory(cases: HostileCase[]): Record<Category, number> {
  const out = {} as Record<Category, number>;
  for (const c of cases) out[c.category] = (out[c.category] ?? 0) + 1;
  return out;
}
