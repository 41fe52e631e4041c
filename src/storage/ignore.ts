// .sourceignore / spec.ignore handling with Flux's defaults (gitignore syntax, via `ignore`).
import ignore, { type Ignore } from 'ignore';

export const VCSPatterns = ['.git/', '.gitignore', '.gitmodules', '.gitattributes'];
export const DefaultPatterns = [
  ...VCSPatterns,
  '*.jpg', '*.jpeg', '*.gif', '*.png', '*.wmv', '*.flv', '*.tar.gz', '*.zip',
  '.github/', '.circleci/', '.travis.yml', '.gitlab-ci.yml', 'appveyor.yml', '.drone.yml', 'cloudbuild.yaml', 'codeship-services.yml', 'codeship-steps.yml',
  '**/.goreleaser.yml', '**/.sops.yaml', '**/.flux.yaml',
];

/**
 * Rewrites the patterns of a `.sourceignore` found in directory `dir` (relative, no trailing
 * slash) so they apply from the artifact root, keeping gitignore's meaning: a pattern with a
 * slash before its end is anchored to `dir`; one without matches at any depth below `dir`.
 */
export function scopePatterns(dir: string, text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/(?<!\\)\s+$/, '');
    if (!line || line.startsWith('#')) continue;
    if (!dir) {
      out.push(line);
      continue;
    }
    const neg = line.startsWith('!');
    let pat = neg ? line.slice(1) : line;
    const anchored = pat.slice(0, -1).includes('/');
    pat = pat.replace(/^\//, '');
    out.push(`${neg ? '!' : ''}${dir}/${anchored ? '' : '**/'}${pat}`);
  }
  return out;
}

/**
 * Builds the filter: `.sourceignore` patterns (by directory) plus `spec.ignore`. When both are
 * empty Flux's defaults apply; otherwise only the VCS patterns plus the user's.
 */
export function buildIgnore(sourceIgnores: { dir: string; text: string }[], specIgnore: string | undefined): Ignore {
  const patterns: string[] = [];
  for (const s of [...sourceIgnores].sort((a, b) => a.dir.length - b.dir.length || (a.dir < b.dir ? -1 : 1))) patterns.push(...scopePatterns(s.dir, s.text));
  if (specIgnore) patterns.push(...scopePatterns('', specIgnore));
  const ig = ignore({ allowRelativePaths: true });
  ig.add(patterns.length === 0 ? DefaultPatterns : [...VCSPatterns, ...patterns]);
  return ig;
}

/**
 * True when `path` (a file, or a directory when `isDir`) is ignored; `ignore` also applies the
 * rules of its parent directories (gitignore: nothing below an excluded directory comes back).
 */
export function isIgnored(ig: Ignore, path: string, isDir: boolean): boolean {
  return ig.ignores(isDir ? `${path}/` : path);
}
