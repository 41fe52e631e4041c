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
  readonly kube: Kube;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(kube: Kube, opts: LeaderOptions) {
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

  /** Resolves once this process holds the lease. */
  async acquire(): Promise<void> {
    for (;;) {
      if (this.#stopped) throw new Error('leader election stopped');
      if (await this.#tryAcquireOrRenew().catch((err: Error) => (this.opts.log.warn({ err: err.message }, 'leader election attempt failed'), false))) {
        this.#leading = true;
        this.opts.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.identity }, 'became leader');
        return;
      }
      await new Promise((r) => setTimeout(r, this.opts.retryPeriodMs));
    }
  }

  /** Renews until stopped; calls `onLost` once if renewal fails for longer than renewDeadline. */
  keepRenewing(onLost: () => void): void {
    let lastRenew = Date.now();
    const tick = async () => {
      if (this.#stopped) return;
      const ok = await this.#tryAcquireOrRenew().catch(() => false);
      if (ok) lastRenew = Date.now();
      else if (Date.now() - lastRenew > this.opts.renewDeadlineMs) {
        this.#leading = false;
        this.opts.log.error({ lease: `${this.opts.namespace}/${this.opts.name}` }, 'leader lease lost');
        onLost();
        return;
      }
      this.#timer = setTimeout(() => void tick(), this.opts.retryPeriodMs);
    };
    this.#timer = setTimeout(() => void tick(), this.opts.retryPeriodMs);
  }

  /** Stops renewing and, if leading, releases the lease so another replica takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.kube.request<Lease>('GET', this.#path);
      if (lease.spec.holderIdentity !== this.identity) return;
      await this.kube.request('PUT', this.#path, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) } });
      this.opts.log.info('released leader lease');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'failed to release leader lease');
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationSeconds = Math.max(1, Math.ceil(this.opts.leaseDurationMs / 1000));
    let lease: Lease;
    try {
      lease = await this.kube.request<Lease>('GET', this.#path);
    } catch (err) {
      if (!(err instanceof KubeError) || err.status !== 404) throw err;
      const fresh = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.opts.name, namespace: this.opts.namespace }, spec: { holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 } };
      try {
        await this.kube.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`, fresh);
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
      const updated = await this.kube.request<Lease>('PUT', this.#path, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: lease.metadata, spec });
      this.#observed = { record: JSON.stringify(updated.spec), at: Date.now() };
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 409) return false;
      throw err;
    }
  }
}
