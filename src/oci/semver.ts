// Semver tag selection with Flux's (Masterminds semver v3) conventions on top of npm's `semver`.
import vm from 'node:vm';
// The two classes, not the index: it loads all 48 of semver's modules, 15 ms of a CLI's start-up.
import Range from 'semver/classes/range.js';
import SemVer from 'semver/classes/semver.js';
import { DefaultLimits, exceeded, type Limits } from '../api/limits.ts';

const HelmChartLayer = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

/**
 * Parses a tag the lenient way Masterminds' NewVersion does: an optional "v", then 1–3 numeric
 * parts (missing ones are 0), then an optional pre-release and build metadata.
 */
export function parseTagVersion(tag: string): SemVer | null {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(tag);
  if (!m) return null;
  const s = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}${m[5] ?? ''}`;
  try {
    return new SemVer(s);
  } catch {
    return null;
  }
}

/** Masterminds separates AND-ed comparators with commas; npm's semver with spaces. */
export function parseConstraint(constraint: string): Range {
  const normalised = constraint.replace(/,/g, ' ').replace(/\s+/g, ' ').trim();
  // Masterminds considers pre-releases whenever the constraint itself names one.
  const includePrerelease = /\d-[0-9A-Za-z]/.test(normalised);
  try {
    return new Range(normalised, { includePrerelease });
  } catch (err) {
    throw new Error(`improper semver constraint '${constraint}': ${(err as Error).message}`);
  }
}

export interface SemverPick {
  tag: string;
  version: string;
}

// Tags are matched in slices, yielding in between, so 100,000 tags do not hold the event loop.
const Slice = 2000;

/**
 * Picks the highest tag satisfying `constraint` among `tags`, after applying the optional
 * `filter` regular expression. Helm charts encode '+' as '_' in OCI tags.
 */
export async function pickSemverTag(tags: string[], constraint: string, filter?: string, layerMediaType?: string, limits: Pick<Limits, 'semverFilterMaxTime'> = DefaultLimits): Promise<SemverPick | null> {
  const range = parseConstraint(constraint);
  const matches = filter ? filterIn(filter, limits.semverFilterMaxTime) : undefined;
  const helm = layerMediaType === HelmChartLayer;
  let best: { tag: string; v: SemVer } | null = null;
  for (let i = 0; i < tags.length; i += Slice) {
    if (i) await yieldToLoop();
    let slice = tags.slice(i, i + Slice);
    if (matches) slice = await matches(slice);
    for (const tag of slice) {
      const v = parseTagVersion(helm ? tag.replace(/_/g, '+') : tag);
      if (!v || !range.test(v)) continue;
      const order = best ? v.compare(best.v) : 1;
      if (order > 0 || (order === 0 && tag < best!.tag)) best = { tag, v };
    }
  }
  return best ? { tag: best.tag, version: best.v.version } : null;
}

const yieldToLoop = () => new Promise((r) => setImmediate(r));

// One run of the filter over a slice holds the event loop at most this long (wall clock).
const SliceStallMs = 100;

/** CPU milliseconds of this thread (of the process on Node < 23.9), immune to a busy machine. */
function cpuMs(): number {
  const u = process.threadCpuUsage?.() ?? process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The tags of a slice that `filter` matches. Flux runs semverFilter with Go's linear-time regexp;
 * JavaScript's backtracks, and a filter like `(a+)+$` can take hours on one tag. So matching runs
 * in a vm context whose timeout interrupts it after SliceStallMs, the event loop turns between
 * runs, and the CPU time the filter spends on the whole tag list is bounded by `maxMs` (CPU time,
 * so a loaded machine does not fail a good filter; an interrupted run is tried again).
 */
function filterIn(filter: string, maxMs: number): (tags: string[]) => Promise<string[]> {
  let re: RegExp;
  try {
    re = new RegExp(filter);
  } catch (err) {
    throw new Error(`failed to compile semverFilter '${filter}': ${(err as Error).message}`);
  }
  const ctx = vm.createContext({ re, tags: [] as string[], out: [] as string[] });
  let spent = 0;
  const over = () => exceeded('semverFilterMaxTime', `semverFilter '${filter}' took more than ${maxMs} ms of CPU to match the tags (a regular expression that backtracks)`);
  return async (tags) => {
    ctx.tags = tags;
    for (;;) {
      const started = cpuMs();
      let done = false;
      try {
        vm.runInContext('out = tags.filter((t) => re.test(t))', ctx, { timeout: SliceStallMs });
        done = true;
      } catch (err) {
        if ((err as { code?: string }).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw err;
      }
      spent += cpuMs() - started;
      if (spent > maxMs) over();
      if (done) return [...(ctx.out as string[])];
      await yieldToLoop();
    }
  };
}
