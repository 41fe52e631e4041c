// Semver tag selection with Flux's (Masterminds semver v3) conventions on top of npm's `semver`.
import semver from 'semver';

const HelmChartLayer = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

/**
 * Parses a tag the lenient way Masterminds' NewVersion does: an optional "v", then 1–3 numeric
 * parts (missing ones are 0), then an optional pre-release and build metadata.
 */
export function parseTagVersion(tag: string): semver.SemVer | null {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(tag);
  if (!m) return null;
  const s = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}${m[5] ?? ''}`;
  return semver.parse(s);
}

/** Masterminds separates AND-ed comparators with commas; npm's semver with spaces. */
export function parseConstraint(constraint: string): semver.Range {
  const normalised = constraint.replace(/,/g, ' ').replace(/\s+/g, ' ').trim();
  // Masterminds considers pre-releases whenever the constraint itself names one.
  const includePrerelease = /\d-[0-9A-Za-z]/.test(normalised);
  try {
    return new semver.Range(normalised, { includePrerelease });
  } catch (err) {
    throw new Error(`improper semver constraint '${constraint}': ${(err as Error).message}`);
  }
}

export interface SemverPick {
  tag: string;
  version: string;
}

/**
 * Picks the highest tag satisfying `constraint` among `tags`, after applying the optional
 * `filter` regular expression. Helm charts encode '+' as '_' in OCI tags.
 */
export function pickSemverTag(tags: string[], constraint: string, filter?: string, layerMediaType?: string): SemverPick | null {
  const range = parseConstraint(constraint);
  let re: RegExp | undefined;
  if (filter) {
    try {
      re = new RegExp(filter);
    } catch (err) {
      throw new Error(`failed to compile semverFilter '${filter}': ${(err as Error).message}`);
    }
  }
  const helm = layerMediaType === HelmChartLayer;
  let best: { tag: string; v: semver.SemVer } | null = null;
  for (const tag of tags) {
    if (re && !re.test(tag)) continue;
    const v = parseTagVersion(helm ? tag.replace(/_/g, '+') : tag);
    if (!v || !range.test(v)) continue;
    if (!best || semver.gt(v, best.v) || (semver.eq(v, best.v) && tag < best.tag)) best = { tag, v };
  }
  return best ? { tag: best.tag, version: best.v.version } : null;
}
