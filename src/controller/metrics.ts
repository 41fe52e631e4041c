// Prometheus metrics and health endpoints, via prom-client (the standard Node exporter).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Histogram, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheRecorder } from '../oci/cloud/cache.ts';
import { http } from '../util/node-http.ts';
import type { QueueMetrics } from './queue.ts';

const QueueName = 'ocirepository';

/**
 * How often the event-loop delay monitors (ours and prom-client's nodejs_eventloop_lag_*) sample.
 * Each sample is a timer wake-up: at prom-client's default of 10 ms the two cost half a percent of
 * a core in an idle controller, more than a thousand objects' steady state leaves for everything
 * else. At 100 ms a stall longer than that is always seen, and shorter ones in proportion.
 * Node's monitor records the time between samples, interval included: ours subtracts it, so it
 * reads as the delay itself; prom-client's figures keep it (about 0.1 s when nothing is late).
 */
export const EventLoopSampleMs = 100;

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram<'kind' | 'namespace' | 'name'>;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly #results = new Map<string, ReturnType<Counter<'controller' | 'result'>['labels']>>();
  readonly #durations = new Map<string, ReturnType<Histogram<'kind' | 'namespace' | 'name'>['labels']>>();
  /** controller-runtime's workqueue metrics, with the same names and `name` label. */
  readonly queue: QueueMetrics;
  /** Workload identity token cache (src/oci/cloud), named like Flux's gotk_token_* metrics. */
  readonly tokenCache: CacheRecorder;
  /** Event-loop delay over the whole life of the process (never reset, unlike prom-client's per-scrape nodejs_eventloop_lag_*). */
  readonly eventLoopDelay: ReturnType<typeof monitorEventLoopDelay>;
  #pools: () => number = () => 0;
  ready = false;

  constructor() {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EventLoopSampleMs });
    this.reconcileDuration = new Histogram({
      name: 'ocisource_reconcile_duration_seconds',
      help: 'Duration of OCIRepository reconciles.',
      labelNames: ['kind', 'namespace', 'name'],
      buckets: [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1800],
      registers: [this.registry],
    });
    this.reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Reconciles by result (success, error, requeue_after).', labelNames: ['controller', 'result'], registers: [this.registry] });
    const r = [this.registry];
    const labelNames = ['name'] as const;
    const buckets = [0.001, 0.01, 0.1, 1, 10, 100, 1000];
    const adds = new Counter({ name: 'workqueue_adds_total', help: 'Adds handled by the work queue.', labelNames, registers: r });
    const depth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of the work queue.', labelNames, registers: r });
    const queued = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'Seconds an item stays in the work queue before being requested.', labelNames, buckets, registers: r });
    const worked = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'Seconds processing an item from the work queue takes.', labelNames, buckets, registers: r });
    const retries = new Counter({ name: 'workqueue_retries_total', help: 'Retries handled by the work queue.', labelNames, registers: r });
    // Label children made once: a labelled call hashes its labels every time, several times a reconcile.
    const l = { name: QueueName };
    const [addsL, depthL, queuedL, workedL, retriesL] = [adds.labels(l), depth.labels(l), queued.labels(l), worked.labels(l), retries.labels(l)];
    this.queue = {
      added: () => addsL.inc(),
      depth: (n) => depthL.set(n),
      queued: (s) => queuedL.observe(s),
      worked: (s) => workedL.observe(s),
      retried: () => retriesL.inc(),
    };
    const events = new Counter({ name: 'ocisource_token_cache_events_total', help: 'Token cache lookups by outcome (cache_hit, cache_miss) and cloud provider.', labelNames: ['event_type', 'provider'], registers: [this.registry] });
    const evictions = new Counter({ name: 'ocisource_token_cache_evictions_total', help: 'Tokens evicted to keep the cache within --token-cache-max-size.', registers: [this.registry] });
    const items = new Gauge({ name: 'ocisource_token_cached_items', help: 'Tokens in the cache.', registers: [this.registry] });
    this.tokenCache = {
      event: (kind, provider) => events.inc({ event_type: kind === 'hit' ? 'cache_hit' : 'cache_miss', provider }),
      eviction: () => evictions.inc(),
      items: (n) => items.set(n),
    };
    const delay = (this.eventLoopDelay = monitorEventLoopDelay({ resolution: EventLoopSampleMs }));
    delay.enable();
    new Gauge({
      name: 'ocisource_event_loop_delay_seconds',
      help: 'Event-loop delay since the process started: how late a timer due every 100 ms fired (perf_hooks.monitorEventLoopDelay); quantile "1" is the worst.',
      labelNames: ['quantile'],
      registers: [this.registry],
      collect() {
        const late = (ns: number) => Math.max(0, ns / 1e6 - EventLoopSampleMs) / 1e3;
        for (const q of [0.5, 0.99]) this.set({ quantile: String(q) }, late(delay.percentile(q * 100)));
        this.set({ quantile: '1' }, late(delay.max));
      },
    });
    const pools = () => this.#pools();
    new Gauge({
      name: 'ocisource_registry_connection_pools',
      help: 'Open registry connection pools (one per distinct TLS/proxy/insecure setting in use).',
      registers: [this.registry],
      collect() {
        this.set(pools());
      },
    });
  }

  /**
   * Reports the in-memory caches: the artifact server's (bounded by --artifact-cache-max-size) and
   * verification results (bounded by entries), and how often trust material was parsed.
   */
  observeCaches(caches: { artifacts: () => { bytes: number; entries: number; hits: number; misses: number }; verification: () => { entries: number; bytes: number; prepared: number; hits: number; misses: number } }): void {
    const r = [this.registry];
    new Gauge({
      name: 'ocisource_artifact_cache_bytes',
      help: 'Bytes of small artifacts the artifact server holds in memory.',
      registers: r,
      collect() {
        this.set(caches.artifacts().bytes);
      },
    });
    new Gauge({
      name: 'ocisource_cache_bytes',
      help: 'Estimated bytes held by in-memory caches (artifact: served files; verification: results), each bounded by its --*-cache-max-size flag.',
      labelNames: ['cache'],
      registers: r,
      collect() {
        this.set({ cache: 'artifact' }, caches.artifacts().bytes);
        this.set({ cache: 'verification' }, caches.verification().bytes);
      },
    });
    new Gauge({
      name: 'ocisource_cache_entries',
      help: 'Entries of in-memory caches (artifact: served files; verification: results).',
      labelNames: ['cache'],
      registers: r,
      collect() {
        const v = caches.verification();
        this.set({ cache: 'artifact' }, caches.artifacts().entries);
        this.set({ cache: 'verification' }, v.entries);
      },
    });
    // Counts kept by the caches themselves; exported as counters at each scrape.
    new Counter({
      name: 'ocisource_cache_requests_total',
      help: 'Lookups of in-memory caches by result (hit, miss).',
      labelNames: ['cache', 'result'],
      registers: r,
      collect() {
        this.reset();
        const a = caches.artifacts();
        const v = caches.verification();
        this.inc({ cache: 'artifact', result: 'hit' }, a.hits);
        this.inc({ cache: 'artifact', result: 'miss' }, a.misses);
        this.inc({ cache: 'verification', result: 'hit' }, v.hits);
        this.inc({ cache: 'verification', result: 'miss' }, v.misses);
      },
    });
    new Counter({
      name: 'ocisource_trust_material_parses_total',
      help: 'Verification Secrets parsed into a prepared verifier (once per Secret resourceVersion, provider and identity rules).',
      registers: r,
      collect() {
        this.reset();
        this.inc(caches.verification().prepared);
      },
    });
  }

  /** Reports the pools of the registry transport. */
  observeTransport(transport: { pools: number }): void {
    this.#pools = () => transport.pools;
  }

  countReconcile(result: 'success' | 'error' | 'requeue_after'): void {
    let c = this.#results.get(result);
    if (!c) this.#results.set(result, (c = this.reconcileTotal.labels({ controller: QueueName, result })));
    c.inc();
  }

  observeReconcile(namespace: string, name: string, seconds: number): void {
    const key = `${namespace}/${name}`;
    let h = this.#durations.get(key);
    if (!h) this.#durations.set(key, (h = this.reconcileDuration.labels({ kind: 'OCIRepository', namespace, name })));
    h.observe(seconds);
  }

  /** The object is gone: its series go too, so deleted objects do not pile up in /metrics. */
  forgetObject(namespace: string, name: string): void {
    if (!this.#durations.delete(`${namespace}/${name}`)) return;
    this.reconcileDuration.remove({ kind: 'OCIRepository', namespace, name });
  }

  /** Serves /metrics, /healthz and /readyz. */
  async listen(host: string, port: number): Promise<{ server: Server; address: AddressInfo }> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.registry.metrics().then((body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body), () => res.writeHead(500).end());
      } else if (path === '/healthz') {
        res.writeHead(200).end('ok');
      } else if (path === '/readyz') {
        res.writeHead(this.ready ? 200 : 503).end(this.ready ? 'ok' : 'starting');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return { server, address: server.address() as AddressInfo };
  }
}
