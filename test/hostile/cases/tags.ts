// Hostile tag lists for `semver` refs: bodies that are not JSON or not the right JSON, pages that
// are huge, pagination that never ends (issue 7 item 3: ~30 MiB pages with Link: rel="next"),
// and answers that drip. Listing must be bounded in count and bytes across all pages, and every
// failure typed, with a message that names the bound.
import { drip, send } from '../server.ts';
import { cliPull, readFailed, type Behaviour, type HostileCase, type HostileRequest } from '../types.ts';

const TagProblem = /tag/i;
const Bounded = /limit (maxTags|tagListMaxSize); raise it with --(max-tags|tag-list-max-size)/;
type Res = Parameters<Behaviour>[1];

let bigPage: Buffer | undefined;
/** A tag-list page of about 30 MiB (2.5 million tags), built once. */
function page30MiB(): Buffer {
  if (!bigPage) {
    const parts = ['{"name":"x","tags":['];
    for (let i = 0; i < 2_500_000; i++) parts.push(`${i ? ',' : ''}"t${String(i).padStart(8, '0')}"`);
    parts.push(']}');
    bigPage = Buffer.from(parts.join(''));
  }
  return bigPage;
}

const onTags = (answer: (req: HostileRequest, res: Res) => void): HostileCase['attack'] => ({
  kind: 'serve',
  behaviour: () => (req, res) => (req.kind === 'tags' ? answer(req, res) : 'pass'),
});

/** Each page links to one more, forever. */
const endless = (body: (n: number) => Buffer | string) =>
  onTags((req, res) => {
    const n = Number(req.url.searchParams.get('page') ?? 0);
    const b = Buffer.from(body(n));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length, link: `<${req.url.pathname}?n=1000&page=${n + 1}>; rel="next"` });
    res.end(b);
  });

function tagCase(id: string, title: string, attack: HostileCase['attack'], message: RegExp, extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `tags-${id}`, category: 'tags', title, attacker: 'registry', profile: 'cosign-key', viaHostile: true, ref: 'semver', attack, expect: readFailed(message), ...extra };
}

export function tagCases(): HostileCase[] {
  const html = '<html><body>Service Unavailable</body></html>';
  return [
    tagCase('not-json', 'a tag list that is not JSON', onTags((_q, res) => send(res, 200, 'garbage', { 'content-type': 'application/json' })), TagProblem, { cli: cliPull(TagProblem) }),
    tagCase('html', 'a tag list answered with an HTML page (200)', onTags((_q, res) => send(res, 200, html, { 'content-type': 'text/html' })), TagProblem),
    tagCase('null', "a tag list of 'null'", onTags((_q, res) => send(res, 200, 'null', { 'content-type': 'application/json' })), TagProblem),
    tagCase('tags-string', "'tags' is a string, not an array", onTags((_q, res) => send(res, 200, '{"tags":"1.0.0-evil"}', { 'content-type': 'application/json' })), TagProblem),
    tagCase('tags-numbers', "'tags' holds numbers and objects", onTags((_q, res) => send(res, 200, '{"tags":[1,{"a":2},null]}', { 'content-type': 'application/json' })), TagProblem),
    tagCase('deep-json', 'a tag list nested 1,000,000 arrays deep', onTags((_q, res) => send(res, 200, `{"tags":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`, { 'content-type': 'application/json' })), TagProblem),
    tagCase('endless-30mib-pages', 'pages of about 30 MiB each, every one linking to the next, forever', endless(() => page30MiB()), Bounded, { item: 3, solo: true, cli: cliPull(Bounded) }),
    tagCase('endless-small-pages', 'pages of one tag each, linking to the next, forever', endless((n) => `{"tags":["x${n}"]}`), /tag/i, { solo: true }),
    tagCase('link-loop', 'a page that links to itself', onTags((req, res) => {
      const b = Buffer.from('{"tags":["zzz"]}');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length, link: `<${req.path}>; rel="next"` });
      res.end(b);
    }), /tag/i),
    tagCase('million-tags', 'one page of 1,500,000 tags', onTags((_q, res) => send(res, 200, JSON.stringify({ tags: Array.from({ length: 1_500_000 }, (_, i) => `v${i}`) }), { 'content-type': 'application/json' })), Bounded, { solo: true }),
    tagCase('page-40mib', 'one page of 40 MiB', onTags((_q, res) => send(res, 200, `{"tags":["${'a'.repeat(40 << 20)}"]}`, { 'content-type': 'application/json' })), Bounded),
    tagCase('long-tags', '200 tags of 100 KB each', onTags((_q, res) => send(res, 200, JSON.stringify({ tags: Array.from({ length: 200 }, (_, i) => `${i}.0.0-${'a'.repeat(100_000)}`) }), { 'content-type': 'application/json' })), /tag/i),
    tagCase('error-500-html', 'HTTP 500 with an HTML body', onTags((_q, res) => send(res, 500, html, { 'content-type': 'text/html' })), /500/),
    tagCase('drip', 'the tag list arrives one byte a second', { kind: 'serve', behaviour: (ctx) => (req, res) => (req.kind === 'tags' ? drip(ctx.world.hostile, res, Buffer.from('{"tags":["1.0.0","2.0.0"]}'), { 'content-type': 'application/json' }) : 'pass') }, /timeout|timed out|stopped|deadline|abort/i, { timeout: '10s' }),
  ];
}
