// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews
// the lease; others take it over once it has not changed for `leaseDuration` by their own clock
// (so clock skew between nodes does not matter). A leader that cannot renew within
// `renewDeadline` stops leading, and the process exits so a fresh one can campaign again.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { KubeError, type Kube } from './kube.ts';

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

const microTime = (d: Date) => d.toISOString().replace('Z', '000Z');

export class LeaderElector {
  readonly identity: string;
  readonly opts: LeaderOptions;
  readonly kube: Pick<Kube, 'request'>;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #stopped = false;

  constructor(kube: Pick<Kube, 'request'>, opts: LeaderOptions) {
    this.kube = kube;
    this.opts = opts;
    this.identity = opts.identity ?? `${os.hostname()}_${randomBytes(4).toString('hex')}`;
  }

  get leading(): boolean {
    return this.#leading;
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  /** Resolves once this process holds the lease. Each attempt is bounded by the renew deadline. */
  async acquire(): Promise<void> {
    for (;;) {
      if (this.#stopped) throw new Error('leader election stopped');
      const ok = await this.#tryAcquireOrRenew(AbortSignal.timeout(this.opts.renewDeadlineMs)).catch((err: Error) => {
        this.opts.log.warn({ err: err.message }, 'leader election attempt failed');
        return false;
      });
      if (ok) {
        this.#leading = true;
        this.opts.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.identity }, 'became leader');
        return;
      }
      await sleep(this.opts.retryPeriodMs);
    }
  }

  /**
   * Renews every retryPeriod. Each renewal round has renewDeadline to succeed, retrying every
   * retryPeriod, and every request in it is cancelled when the deadline passes — so a hanging
   * apiserver cannot keep us leading past the deadline while another replica, which waits the
   * longer leaseDuration, takes the lease. `onLost` is called once, the moment the deadline passes.
   */
  keepRenewing(onLost: () => void): void {
    const loop = async () => {
      while (!this.#stopped) {
        await sleep(this.opts.retryPeriodMs);
        if (this.#stopped) return;
        if (await this.#renewWithinDeadline()) continue;
        if (this.#stopped) return;
        this.#leading = false;
        this.opts.log.error({ lease: `${this.opts.namespace}/${this.opts.name}`, renewDeadlineMs: this.opts.renewDeadlineMs }, 'leader lease lost: not renewed within the renew deadline; stopping work');
        onLost();
        return;
      }
    };
    void loop();
  }

  async #renewWithinDeadline(): Promise<boolean> {
    const deadline = AbortSignal.timeout(this.opts.renewDeadlineMs);
    while (!deadline.aborted && !this.#stopped) {
      const ok = await this.#tryAcquireOrRenew(deadline).catch((err: Error) => {
        this.opts.log.warn({ err: err.message }, 'leader lease renewal failed');
        return false;
      });
      if (ok) return true;
      await sleep(this.opts.retryPeriodMs, deadline);
    }
    return false;
  }

  /** Stops renewing and, if leading, releases the lease so another replica takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    if (!this.#leading) return;
    this.#leading = false;
    try {
      // Bounded so shutdown stays quick when the apiserver is slow; the lease then simply expires.
      const signal = AbortSignal.timeout(Math.min(this.opts.renewDeadlineMs, 3000));
      const lease = await this.kube.request<Lease>('GET', this.#path, undefined, undefined, undefined, signal);
      if (lease.spec.holderIdentity !== this.identity) return;
      await this.kube.request('PUT', this.#path, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) } }, undefined, undefined, signal);
      this.opts.log.info('released leader lease');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'failed to release leader lease');
    }
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = new Date();
    const durationSeconds = Math.max(1, Math.ceil(this.opts.leaseDurationMs / 1000));
    let lease: Lease;
    try {
      lease = await this.kube.request<Lease>('GET', this.#path, undefined, undefined, undefined, signal);
    } catch (err) {
      if (!(err instanceof KubeError) || err.status !== 404) throw err;
      const fresh = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.opts.name, namespace: this.opts.namespace }, spec: { holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 } };
      try {
        await this.kube.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`, fresh, undefined, undefined, signal);
        return true;
      } catch (e) {
        if (e instanceof KubeError && e.status === 409) return false;
        throw e;
      }
    }
    const record = JSON.stringify(lease.spec);
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const holder = lease.spec.holderIdentity ?? '';
    const leaseMs = (lease.spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    const expired = holder === '' || Date.now() - this.#observed.at > leaseMs;
    if (holder !== this.identity && !expired) return false;
    const spec = {
      ...lease.spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: microTime(now),
      ...(holder !== this.identity ? { acquireTime: microTime(now), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      // The resourceVersion makes this a compare-and-swap: two candidates cannot both win.
      const updated = await this.kube.request<Lease>('PUT', this.#path, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: lease.metadata, spec }, undefined, undefined, signal);
      this.#observed = { record: JSON.stringify(updated.spec), at: Date.now() };
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 409) return false;
      throw err;
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
