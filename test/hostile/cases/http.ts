// Hostile HTTP answers: redirect loops and scheme/host changes, lying Content-Length, answers
// that drip one byte a second or never come, HTML and non-JSON bodies where JSON is due, token
// endpoints that misbehave. spec.timeout bounds everything; nothing may escape untyped.
import { gzipSync } from 'node:zlib';
import { tgzFiles } from '../bytes.ts';
import { drip, send } from '../server.ts';
import { authFailed, cliPull, layerFailed, pullFailed, type Attack, type Behaviour, type CaseContext, type HostileCase, type HostileRequest } from '../types.ts';
import { pushArtifact, putSecret, signGood, type Pushed } from '../world.ts';
import { OCIManifest } from './common.ts';

const Timeout = /timeout|timed out|stopped|deadline|abort/i;
const Redirect = /redirect/i;
/** The redirect target refuses: the pull fails on its 401 (with or without the leak the case looks for). */
const Unauthorized: HostileCase['expect'] = { kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['AuthenticationFailed', 'OCIArtifactPullFailed', 'OCIArtifactLayerOperationFailed'], message: /401|unauthori[sz]ed|credentials/i };

/** A new signed artifact (real registry) whose downloads the behaviour then intercepts. */
function onNewArtifact(make: (p: Pushed, ctx: CaseContext) => Behaviour): Attack {
  const made = new Map<string, Pushed>();
  return {
    kind: 'serve',
    prepare: async (ctx) => {
      const p = await pushArtifact(ctx.world.registry, ctx.repo, 'v1', tgzFiles({ 'app.yaml': `kind: ConfigMap # next ${ctx.id}\n`, 'big.txt': 'y'.repeat(20_000) }));
      await signGood(ctx.world, 'cosign-key', ctx.repo, { digest: p.manifestDigest, size: p.manifest.length, mediaType: OCIManifest });
      made.set(ctx.id, p);
    },
    behaviour: (ctx) => make(made.get(ctx.id)!, ctx),
  };
}

type Res = Parameters<Behaviour>[1];

/** Answers HEAD and GET of tag v1 with `answer` (resolution fails before any signature is read). */
const onManifest = (answer: (req: HostileRequest, res: Res, ctx: CaseContext) => 'pass' | void): Attack => ({
  kind: 'serve',
  behaviour: (ctx) => (req, res) => {
    if (req.kind !== 'manifest' || req.ref !== 'v1') return 'pass';
    return answer(req, res, ctx);
  },
});

/** A new signed artifact resolves and verifies; then GET of its manifest (by digest) gets `answer`. */
const onManifestGet = (answer: (req: HostileRequest, res: Res, p: Pushed, ctx: CaseContext) => 'pass' | void): Attack =>
  onNewArtifact((p, ctx) => (req, res) => (req.kind === 'manifest' && req.method === 'GET' && req.ref === p.manifestDigest ? answer(req, res, p, ctx) : 'pass'));

const html = '<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Something went wrong</h1></body></html>';

function httpCase(id: string, title: string, attack: Attack, expect: HostileCase['expect'], extra: Partial<HostileCase> = {}): HostileCase {
  return { id: `http-${id}`, category: 'http', title, attacker: 'registry', profile: 'cosign-key', viaHostile: true, attack, expect, ...extra };
}

/** A Bearer challenge pointing at this case's token endpoint, which answers with `token`. */
function tokenAttack(token: (req: HostileRequest, res: Res, ctx: CaseContext) => void): Attack {
  return {
    kind: 'serve',
    behaviour: (ctx) => (req, res) => {
      if (req.kind === 'custom' && req.ref.startsWith('token')) return token(req, res, ctx);
      if (req.kind === 'custom') return 'pass';
      if (req.headers.authorization) return 'pass';
      send(res, 401, JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }), {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="http://${req.host}/x/${ctx.id}/token",service="hostile",scope="repository:${ctx.repo}:pull"`,
      });
    },
  };
}

/** Basic auth in front of the real registry during the good phase (so there are credentials to leak). */
const basicGate = (req: HostileRequest, res: Res): 'pass' | void => {
  if (req.headers.authorization?.startsWith('Basic ')) return 'pass';
  send(res, 401, '', { 'www-authenticate': 'Basic realm="hostile"' });
};

/** The object carries Basic credentials for its registry host. */
async function credentials(ctx: CaseContext): Promise<Record<string, unknown>> {
  await putSecret(ctx.world.cluster, ctx.namespace, `${ctx.id}-creds`, { '.dockerconfigjson': JSON.stringify({ auths: { [ctx.host]: { username: 'tenant', password: 'secret-password' } } }) });
  return { secretRef: { name: `${ctx.id}-creds` } };
}

/** No request on plain HTTP (or to another host) may carry the credentials. */
const noLeak = async (ctx: CaseContext): Promise<string | undefined> => {
  const leaked = ctx.world.hostile.seen(ctx.repo).filter((r) => r.kind === 'custom' && r.headers.authorization);
  return leaked.length ? `credentials were sent after the redirect: ${leaked.map((r) => `${r.scheme}://${r.host}${r.path}`).join(', ')}` : undefined;
};

export function httpCases(): HostileCase[] {
  return [
    // Redirects.
    httpCase('redirect-loop-manifest', 'the manifest redirects to itself forever', onManifest((req, res) => send(res, 302, '', { location: req.path })), pullFailed(Redirect), { cli: cliPull(Redirect) }),
    httpCase('redirect-loop-blob', 'the layer redirects to itself forever', onNewArtifact((p) => (req, res) => (req.kind === 'blob' && req.ref === p.layerDigest ? send(res, 307, '', { location: req.path }) : 'pass')), layerFailed(Redirect)),
    httpCase('redirect-chain', 'the layer redirects through 50 distinct addresses', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind === 'blob' && req.ref === p.layerDigest) return send(res, 302, '', { location: `/x/${ctx.id}/hop/1` });
      if (req.kind === 'custom') return send(res, 302, '', { location: `/x/${ctx.id}/hop/${Number(req.ref.split('/')[1] ?? 0) + 1}` });
      return 'pass';
    }), layerFailed(Redirect)),
    httpCase('redirect-no-location', 'a 302 for the manifest without a Location header', onManifest((_req, res) => send(res, 302)), pullFailed(/redirect|Location|302/i)),
    httpCase('redirect-https-to-http', 'an https layer download redirected to plain http on the same host and port (credentials must not follow)', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind === 'custom') return send(res, 401, html, { 'content-type': 'text/html' });
      if (req.kind === 'blob' && req.ref === p.layerDigest) return send(res, 302, '', { location: `http://${ctx.host}/x/${ctx.id}/blob` });
      return basicGate(req, res);
    }), Unauthorized, { viaHostile: 'tls', setup: credentials, after: noLeak }),
    httpCase('redirect-other-host', 'a layer download redirected to another host (credentials must not follow)', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind === 'custom') return send(res, 401, html, { 'content-type': 'text/html' });
      if (req.kind === 'blob' && req.ref === p.layerDigest) return send(res, 302, '', { location: `http://${ctx.world.hostile.host}/x/${ctx.id}/blob` });
      return basicGate(req, res);
    }), Unauthorized, { viaHostile: 'own', setup: credentials, after: noLeak }),

    // Lying lengths and broken connections.
    httpCase('content-length-longer', 'the manifest says Content-Length 5000, sends 100 bytes and closes', onManifestGet((_req, res) => {
      res.writeHead(200, { 'content-type': OCIManifest, 'content-length': 5000 });
      res.write(Buffer.alloc(100, 0x20));
      setTimeout(() => res.destroy(), 50);
    }), pullFailed(/closed|terminated|length|socket|network|failed/i)),
    httpCase('content-length-shorter', 'the layer says Content-Length 10 and sends 20 KB', onNewArtifact((p) => (req, res) => {
      if (req.kind !== 'blob' || req.ref !== p.layerDigest) return 'pass';
      res.writeHead(200, { 'content-length': 10 });
      res.end(Buffer.concat([p.layer, Buffer.alloc(20_000, 0x41)]));
    }), layerFailed(/bytes|size|digest|closed|terminated|gzip|tarball/i)),
    httpCase('connection-reset', 'the connection is reset before any answer to the manifest', onManifest((_req, res) => void res.socket?.destroy()), pullFailed(/closed|reset|socket|network|failed/i)),
    httpCase('gzip-encoded-manifest', 'the manifest arrives with Content-Encoding: gzip', onManifestGet((_req, res, p) => {
      const body = gzipSync(p.manifest);
      res.writeHead(200, { 'content-type': OCIManifest, 'content-encoding': 'gzip', 'docker-content-digest': p.manifestDigest, 'content-length': body.length });
      res.end(body);
    }), pullFailed(/digest/i)),
    httpCase('endless-manifest', 'the manifest body never ends (spaces, as fast as the client reads)', onManifestGet((_req, res, _p, ctx) => {
      drip(ctx.world.hostile, res, (function* () {
        for (;;) yield Buffer.alloc(64 << 10, 0x20);
      })(), { 'content-type': OCIManifest }, 1, 64 << 10);
    }), pullFailed(/limit|exceeds|too large|bytes/i)),
    httpCase('endless-blob', 'the layer never ends (zeros)', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind !== 'blob' || req.ref !== p.layerDigest) return 'pass';
      drip(ctx.world.hostile, res, (function* () {
        for (;;) yield Buffer.alloc(64 << 10);
      })(), { 'content-type': 'application/octet-stream' }, 1, 64 << 10);
    }), layerFailed(/larger|size|bytes|digest|gzip|tarball/i)),

    // Slow answers: spec.timeout (10s here) must end them.
    httpCase('drip-manifest', 'the manifest arrives one byte a second', onManifestGet((_req, res, p, ctx) => drip(ctx.world.hostile, res, p.manifest, { 'content-type': OCIManifest })), pullFailed(Timeout), { timeout: '10s', cli: cliPull(Timeout) }),
    httpCase('hang-headers', 'the manifest request is accepted and never answered', onManifest(() => undefined), pullFailed(Timeout), { timeout: '10s' }),
    httpCase('drip-blob', 'the layer arrives one byte a second', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind !== 'blob' || req.ref !== p.layerDigest) return 'pass';
      drip(ctx.world.hostile, res, p.layer, { 'content-type': 'application/octet-stream', 'content-length': p.layer.length });
    }), layerFailed(Timeout), { timeout: '10s' }),
    httpCase('drip-signature', 'the signature manifest arrives one byte a second', onNewArtifact((p, ctx) => (req, res) => {
      if (req.kind !== 'manifest' || !req.ref.endsWith('.sig')) return 'pass';
      drip(ctx.world.hostile, res, Buffer.alloc(2000, 0x20), { 'content-type': OCIManifest });
    }), { kind: 'condition', type: 'SourceVerified', status: 'False', reason: ['VerificationError'], message: Timeout }, { timeout: '10s' }),

    // Error bodies that are not the distribution spec's JSON.
    httpCase('error-500-html', 'HTTP 500 with an HTML body for the manifest', onManifest((_req, res) => send(res, 500, html, { 'content-type': 'text/html' })), pullFailed(/500/)),
    httpCase('error-404-html', 'HTTP 404 with an HTML body for the manifest', onManifest((_req, res) => send(res, 404, html, { 'content-type': 'text/html' })), pullFailed(/not found/i)),
    httpCase('error-401-no-challenge', 'HTTP 401 with an HTML body and no WWW-Authenticate', onManifest((_req, res) => send(res, 401, html, { 'content-type': 'text/html' })), authFailed(/401|unauthori[sz]ed|credentials/i)),
    httpCase('error-429-forever', 'HTTP 429 with Retry-After: 999999999', onManifest((_req, res) => send(res, 429, 'slow down', { 'retry-after': '999999999' })), pullFailed(/429/)),
    httpCase('error-json-garbage', 'HTTP 500 with a JSON error body nested 100,000 deep', onManifest((_req, res) => send(res, 500, `{"errors":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, { 'content-type': 'application/json' })), pullFailed(/500/)),
    httpCase('html-200-manifest', 'HTTP 200 text/html instead of the manifest (a captive portal)', onManifestGet((_req, res) => send(res, 200, html, { 'content-type': 'text/html' })), pullFailed(/digest|JSON/i)),
    httpCase('get-404-after-head', 'HEAD finds the manifest, GET says 404', onNewArtifact((p) => (req, res) => {
      if (req.kind !== 'manifest' || req.ref !== p.manifestDigest || req.method !== 'GET') return 'pass';
      send(res, 404, html, { 'content-type': 'text/html' });
    }), pullFailed(/not found|disappeared|404/i)),

    // Token endpoints.
    httpCase('token-html', 'the token endpoint answers HTML', tokenAttack((_req, res) => send(res, 200, html, { 'content-type': 'text/html' })), authFailed(/token/i), { viaHostile: 'own', cli: cliPull(/token/i) }),
    httpCase('token-huge', 'the token endpoint answers 30 MiB of JSON', tokenAttack((_req, res) => send(res, 200, `{"token":"${'t'.repeat(30 << 20)}"}`, { 'content-type': 'application/json' })), authFailed(/token|limit|exceeds/i), { viaHostile: 'own' }),
    httpCase('token-drip', 'the token endpoint answers one byte a second', tokenAttack((_req, res, ctx) => drip(ctx.world.hostile, res, Buffer.from('{"token":"abc"}'), { 'content-type': 'application/json' })), { kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['AuthenticationFailed', 'OCIArtifactPullFailed'], message: Timeout }, { viaHostile: 'own', timeout: '10s' }),
    httpCase('token-no-token', 'the token endpoint answers JSON without a token', tokenAttack((_req, res) => send(res, 200, '{"expires_in":3600}', { 'content-type': 'application/json' })), authFailed(/token/i), { viaHostile: 'own' }),
    httpCase('token-redirect-loop', 'the token endpoint redirects to itself', tokenAttack((req, res) => send(res, 302, '', { location: req.path })), authFailed(/token|redirect/i), { viaHostile: 'own' }),
    httpCase('token-500', 'the token endpoint answers HTTP 500 with HTML', tokenAttack((_req, res) => send(res, 500, html, { 'content-type': 'text/html' })), authFailed(/token|500/i), { viaHostile: 'own' }),
  ];
}
