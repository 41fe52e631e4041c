// Prometheus metrics and health endpoints, via prom-client (the standard Node exporter).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Histogram, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram<'kind' | 'namespace' | 'name'>;
  readonly queueDepth: Gauge;
  ready = false;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.reconcileDuration = new Histogram({
      name: 'ocisource_reconcile_duration_seconds',
      help: 'Duration of OCIRepository reconciles.',
      labelNames: ['kind', 'namespace', 'name'],
      buckets: [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1800],
      registers: [this.registry],
    });
    this.queueDepth = new Gauge({ name: 'ocisource_workqueue_depth', help: 'Objects waiting to be reconciled.', registers: [this.registry] });
  }

  observeReconcile(namespace: string, name: string, seconds: number): void {
    this.reconcileDuration.observe({ kind: 'OCIRepository', namespace, name }, seconds);
  }

  /** Serves /metrics, /healthz and /readyz. */
  async listen(host: string, port: number): Promise<{ server: http.Server; address: AddressInfo }> {
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
