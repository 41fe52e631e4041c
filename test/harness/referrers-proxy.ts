// A small HTTP front for a plain-HTTP docker-registry that adds the OCI 1.1 Referrers API
// (docker-registry 2.8 has none). Referrers are read from the registry's own referrers tag
// index (`sha256-<hex>`), so what it answers is real registry content. Everything else is
// proxied unchanged. Counts calls, so tests can tell which discovery path a client used.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReferrersProxy {
  host: string;
  url: string;
  /** Referrers API requests answered. */
  referrersCalls(): number;
  /** GETs of `sha256-<hex>` tags passed through (the fallback path). */
  tagFallbackCalls(): number;
  /** Paginated tag-list pages served. */
  tagPages(): number;
  stop(): Promise<void>;
}

export interface ReferrersProxyOptions {
  /** host:port of the upstream plain-HTTP registry. */
  upstream: string;
  /** Descriptors per page; more produce a Link header (pagination). Default 2. */
  pageSize?: number;
  /** Apply artifactType filtering server-side and say so (OCI-Filters-Applied). Default true. */
  filter?: boolean;
}

function fetchUpstream(upstream: string, path: string, accept: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const [host, port] = upstream.split(':');
    const req = http.request({ host, port: Number(port), path, method: 'GET', headers: { accept } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function startReferrersProxy(opts: ReferrersProxyOptions): Promise<ReferrersProxy> {
  let referrers = 0;
  let fallback = 0;
  let tagPages = 0;
  const pageSize = opts.pageSize ?? 2;
  const [uHost, uPort] = opts.upstream.split(':');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const m = /^\/v2\/(.+)\/referrers\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      referrers++;
      const [, name, digest] = m as unknown as [string, string, string];
      void fetchUpstream(opts.upstream, `/v2/${name}/manifests/${digest.replace(':', '-')}`, 'application/vnd.oci.image.index.v1+json').then(
        (up) => {
          let manifests: { artifactType?: string }[] = [];
          if (up.status === 200) manifests = (JSON.parse(up.body.toString()) as { manifests: { artifactType?: string }[] }).manifests ?? [];
          const at = url.searchParams.get('artifactType');
          const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.index.v1+json' };
          if (at && opts.filter !== false) {
            manifests = manifests.filter((d) => d.artifactType === at);
            headers['oci-filters-applied'] = 'artifactType';
          }
          const page = Number(url.searchParams.get('page') ?? '0');
          const slice = manifests.slice(page * pageSize, (page + 1) * pageSize);
          if ((page + 1) * pageSize < manifests.length) {
            const next = new URLSearchParams(url.searchParams);
            next.set('page', String(page + 1));
            headers.link = `<${url.pathname}?${next.toString()}>; rel="next"`;
          }
          const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: slice });
          res.writeHead(200, headers).end(body);
        },
        () => res.writeHead(502).end(),
      );
      return;
    }
    const tagsList = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (tagsList && req.method === 'GET' && url.searchParams.get('n')) {
      // docker-registry 2.8 ignores `n` for tags; paginate its real answer here (distribution spec).
      void fetchUpstream(opts.upstream, url.pathname, 'application/json').then((up) => {
        const all = ((JSON.parse(up.body.toString()) as { tags?: string[] }).tags ?? []).sort();
        const n = Number(url.searchParams.get('n'));
        const last = url.searchParams.get('last');
        const start = last ? all.findIndex((t) => t > last) : 0;
        const page = start < 0 ? [] : all.slice(start, start + n);
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (start >= 0 && start + n < all.length) headers.link = `<${url.pathname}?n=${n}&last=${encodeURIComponent(page.at(-1)!)}>; rel="next"`;
        tagPages++;
        res.writeHead(up.status, headers).end(JSON.stringify({ name: tagsList[1], tags: page }));
      }, () => res.writeHead(502).end());
      return;
    }
    if (/\/manifests\/sha256-[a-f0-9]{64}$/.test(url.pathname) && req.method === 'GET') fallback++;
    const up = http.request({ host: uHost, port: Number(uPort), path: req.url, method: req.method, headers: { ...req.headers, host: opts.upstream } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    referrersCalls: () => referrers,
    tagFallbackCalls: () => fallback,
    tagPages: () => tagPages,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
