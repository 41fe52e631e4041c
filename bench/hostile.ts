// Hostile inputs of issue 7, measured (`node bench/hostile.ts [case...]`): each
// case runs in its own process so its peak RSS is its own, and prints wall time, peak RSS, the
// worst event-loop delay seen while it ran, and how it ended. Loopback only, bounded sizes.
//   depth-N      a .tar.gz layer with one entry whose PAX path is 'a/' repeated N times
//   global-pax   a global PAX header of 50,000 records, then 2,000 entries with their own PAX header
//   deep-legal   380 entries 255 components deep (96,520 implied directories), just within the budgets
//   tag-flood    a registry answering ~30 MB tag pages (100,000 tags) with rel="next", up to 40 pages, for a semver ref
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { deepLegalLayer, deepPathLayer, globalPaxLayer } from '../test/helpers/hostile-tar.ts';

async function runCase(name: string): Promise<Record<string, unknown>> {
  const { extractTarGz, packReproducible } = await import('../src/storage/archive.ts');
  let work: () => Promise<string>;
  let input = 0;
  if (name === 'tag-flood') {
    work = await tagFlood();
  } else {
    const m = /^depth-(\d+)$/.exec(name);
    const layer = m ? deepPathLayer(Number(m[1])) : name === 'global-pax' ? globalPaxLayer(50_000, 2000) : name === 'deep-legal' ? deepLegalLayer(380, 255) : undefined;
    if (!layer) throw new Error(`unknown case ${name}`);
    input = layer.length;
    work = async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'osc-hostile-'));
      try {
        const x = await extractTarGz(Readable.from([layer]), dir, {});
        const r = await packReproducible(x, path.join(dir, 'out.tar.gz'), undefined);
        await x.cleanup();
        return `ok: ${r.files} files, ${r.size} bytes re-packed`;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
  }
  const delay = monitorEventLoopDelay({ resolution: 10 });
  let outcome: string;
  delay.enable();
  await new Promise((r) => setTimeout(r, 30)); // the histogram records only after its first tick
  const started = performance.now();
  try {
    outcome = await work();
  } catch (err) {
    outcome = `refused: ${(err as Error).message}`;
  }
  const ms = Math.round(performance.now() - started);
  await new Promise((r) => setTimeout(r, 50)); // a block that just ended is recorded at the next tick
  delay.disable();
  return { case: name, inputBytes: input, ms, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), worstLoopDelayMs: Math.round(delay.max / 1e6), outcome: outcome.slice(0, 220) };
}

/** A registry answering every tag-list page with ~30 MB of tags and a next link, for up to 40 pages. */
async function tagFlood(): Promise<() => Promise<string>> {
  const { RegistryClient } = await import('../src/oci/client.ts');
  const { Transport } = await import('../src/oci/transport.ts');
  const { resolveRef } = await import('../src/oci/resolve.ts');
  const page = Buffer.from(JSON.stringify({ name: 'x/y', tags: Array.from({ length: 100_000 }, (_, i) => `1.${i}.0-${'p'.repeat(280)}`) }));
  return async () => {
    let pages = 0;
    const srv = http.createServer((req, res) => {
      if (!req.url?.includes('/tags/list') || pages >= 40) return res.writeHead(404).end();
      pages++;
      res.writeHead(200, { 'content-type': 'application/json', link: `</v2/x/y/tags/list?n=1000&last=${pages}>; rel="next"` }).end(page);
    });
    // Long enough that a client stalled by parsing a page still finds its connection open.
    srv.keepAliveTimeout = 120_000;
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const transport = new Transport();
    try {
      const c = new RegistryClient({ registry: 'flood', apiHost: `127.0.0.1:${(srv.address() as AddressInfo).port}`, repository: 'x/y' }, { transport, insecure: true, signal: AbortSignal.timeout(120_000) });
      const r = await resolveRef(c, { semver: '>=1.0.0' });
      return `resolved ${r.revision} after ${pages} pages of ${page.length} bytes`;
    } catch (err) {
      throw new Error(`${(err as Error).message} (after ${pages} pages of ${page.length} bytes)`);
    } finally {
      srv.closeAllConnections();
      srv.close();
      await transport.close();
    }
  };
}

const cases = ['depth-10000', 'depth-80000', 'global-pax', 'deep-legal', 'tag-flood'];
if (process.argv[2] === 'case') {
  console.log(JSON.stringify(await runCase(process.argv[3]!)));
} else {
  for (const c of process.argv.slice(2).length ? process.argv.slice(2) : cases) {
    const r = spawnSync(process.execPath, [import.meta.filename, 'case', c], { encoding: 'utf8', timeout: 300_000 });
    process.stdout.write(r.stdout || `${JSON.stringify({ case: c, outcome: `no result (signal ${r.signal}, status ${r.status}) ${r.stderr.slice(-300)}` })}\n`);
  }
}
