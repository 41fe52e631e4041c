// List + watch with a local cache: resumes from the last resourceVersion (bookmarks keep it
// fresh), relists on 410 Gone, and reconnects with a capped backoff when the connection drops.
import type { Logger } from 'pino';
import type { Kube, WatchEvent } from './kube.ts';

export interface Meta {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

export interface InformerHandlers<T> {
  onAdd(obj: T): void;
  onUpdate(prev: T, obj: T): void;
  onDelete(obj: T): void;
}

export interface InformerOptions {
  /** Collection path without query, e.g. /apis/g/v1/ocirepositories or /api/v1/namespaces/x/secrets. */
  path: string;
  labelSelector?: string;
  /** Accept header; metadata-only watches use PartialObjectMetadata. */
  accept?: string;
  listAccept?: string;
  log: Logger;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. Default 240–360 s. */
  watchTimeoutSeconds?: number;
}

export function keyOf(o: Meta): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/**
 * Drops metadata.managedFields before an object is cached (as controller-runtime's
 * TransformStripManagedFields does): nothing here reads them, and they are often the largest part
 * of an object, for every Secret in the cluster as much as for our own objects.
 */
export function stripManagedFields<T extends Meta>(o: T): T {
  delete (o.metadata as { managedFields?: unknown }).managedFields;
  return o;
}

export class Informer<T extends Meta> {
  readonly cache = new Map<string, T>();
  #rv = '';
  #synced = false;
  #waiters: (() => void)[] = [];
  #stop = new AbortController();
  #done: Promise<void> | undefined;
  /** Counters for tests: how often we listed and (re)started a watch. */
  lists = 0;
  watches = 0;
  handlerErrors = 0;

  readonly kube: Kube;
  readonly opts: InformerOptions;
  readonly handlers: InformerHandlers<T>;

  constructor(kube: Kube, opts: InformerOptions, handlers: InformerHandlers<T>) {
    this.kube = kube;
    this.opts = opts;
    this.handlers = handlers;
  }

  start(): void {
    this.#done ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string {
    return this.#rv;
  }
  /** For tests: pretend we were offline long enough for our resourceVersion to expire. */
  set resourceVersion(rv: string) {
    this.#rv = rv;
  }

  /** Resolves once the first list has been applied to the cache. */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams(extra);
    if (this.opts.labelSelector) q.set('labelSelector', this.opts.labelSelector);
    return `${this.opts.path}?${q.toString()}`;
  }

  async #list(): Promise<void> {
    this.lists++;
    const res = await this.kube.request<{ metadata: { resourceVersion: string }; items: T[] }>('GET', this.#query({}), undefined, 'application/json', this.opts.listAccept ?? 'application/json');
    const seen = new Set<string>();
    for (const item of res.items ?? []) {
      seen.add(keyOf(item));
      if (this.cache.get(keyOf(item))?.metadata.resourceVersion !== item.metadata.resourceVersion) this.#apply('MODIFIED', item);
    }
    for (const [k, prev] of this.cache) if (!seen.has(k)) this.#apply('DELETED', prev);
    this.#rv = res.metadata.resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#waiters.splice(0)) w();
    }
  }

  /**
   * Applies one change to the cache and calls its handler. If the handler throws, the cache is
   * restored so the change is seen again when it is redelivered (after a relist or a re-watch).
   */
  #apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const k = keyOf(obj);
    const prev = this.cache.get(k);
    try {
      if (type === 'DELETED') {
        this.cache.delete(k);
        this.handlers.onDelete(obj);
      } else {
        this.cache.set(k, stripManagedFields(obj));
        if (prev) this.handlers.onUpdate(prev, obj);
        else this.handlers.onAdd(obj);
      }
    } catch (err) {
      if (prev) this.cache.set(k, prev);
      else this.cache.delete(k);
      this.handlerErrors++;
      this.opts.log.error({ path: this.opts.path, object: k, err: (err as Error).message }, 'event handler failed; the event will be delivered again');
      throw err;
    }
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let delay = 250;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
        }
        this.watches++;
        let gone = false;
        await this.kube.watch<T>(
          this.#query({ watch: '1', resourceVersion: this.#rv, allowWatchBookmarks: 'true', timeoutSeconds: String(this.opts.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 120)) }),
          (e: WatchEvent<T>) => {
            if (e.type === 'ERROR') {
              const status = e.object as unknown as { code?: number; message?: string };
              if (status.code === 410) gone = true;
              else this.opts.log.warn({ path: this.opts.path, status }, 'watch error event');
              return;
            }
            const rv = e.object.metadata?.resourceVersion;
            if (e.type !== 'BOOKMARK') this.#apply(e.type, e.object);
            // Only past an event once its handler ran: a throwing handler ends this watch
            // (via kube.watch) and the next one resumes before the event, which is delivered again.
            if (rv) this.#rv = rv;
          },
          signal,
          this.opts.accept,
        );
        if (gone) {
          this.opts.log.info({ path: this.opts.path }, 'watch resourceVersion expired (410 Gone); relisting');
          needList = true;
        }
        delay = 250;
      } catch (err) {
        if (signal.aborted) break;
        const status = (err as { status?: number }).status;
        if (status === 410) needList = true;
        this.opts.log.warn({ path: this.opts.path, err: (err as Error).message, retryInMs: delay }, 'list/watch failed; retrying');
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 30_000);
        if (status !== undefined && status !== 410) needList = true;
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
