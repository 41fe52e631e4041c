// Test-only name resolution: cloud host names (myacr.azurecr.io, sts.us-west-2.amazonaws.com, …)
// resolve to 127.0.0.1 inside one process, without touching /etc/hosts (the machine is shared).
// The controller gets it with NODE_OPTIONS=--import <this file> and OSC_TEST_HOSTS=a,b,c; the
// test process calls installTestHosts() itself. Ports travel in the URLs (host:port), so
// `myacr.azurecr.io:<port>` is still a *.azurecr.io host to the code under test.
import dns from 'node:dns';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

const names = new Set<string>();
let installed = false;

export function installTestHosts(hosts: Iterable<string>): void {
  for (const h of hosts) if (h) names.add(h.toLowerCase());
  if (installed) return;
  installed = true;
  const original = dns.lookup;
  const patched = function lookup(hostname: string, options: unknown, callback?: unknown): void {
    const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
    const opts = (typeof options === 'object' && options !== null ? options : {}) as dns.LookupOptions;
    if (!names.has(String(hostname).toLowerCase())) {
      (original as (...a: unknown[]) => void).call(dns, hostname, options, callback);
      return;
    }
    if (opts.all) process.nextTick(cb, null, [{ address: '127.0.0.1', family: 4 }]);
    else process.nextTick(cb, null, '127.0.0.1', 4);
  };
  (dns as { lookup: unknown }).lookup = patched;
  const originalPromise = dns.promises.lookup;
  (dns.promises as { lookup: unknown }).lookup = (hostname: string, options?: dns.LookupOptions) =>
    names.has(String(hostname).toLowerCase())
      ? Promise.resolve(options?.all ? [{ address: '127.0.0.1', family: 4 }] : { address: '127.0.0.1', family: 4 })
      : (originalPromise as (h: string, o?: dns.LookupOptions) => Promise<unknown>)(hostname, options ?? {});
}

if (process.env.OSC_TEST_HOSTS) installTestHosts(process.env.OSC_TEST_HOSTS.split(','));
