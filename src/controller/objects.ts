// Writes to OCIRepository objects: status through the status subresource (only when it changed)
// and finalizers, both as merge patches guarded by resourceVersion, retried after a conflict.
import { Finalizer, Group, Plural, Version } from '../api/names.ts';
import type { OCIRepository, OCIRepositoryStatus } from '../api/schema.ts';
import { KubeError, type Kube } from './kube.ts';

export function objectPath(o: OCIRepository): string {
  return `/apis/${Group}/${Version}/namespaces/${o.metadata.namespace}/${Plural}/${o.metadata.name}`;
}

/** GET that answers null for 404. */
export async function getOrNull<T>(kube: Kube, path: string): Promise<T | null> {
  try {
    return await kube.request<T>('GET', path);
  } catch (err) {
    if (err instanceof KubeError && err.status === 404) return null;
    throw err;
  }
}

/**
 * Whether two JSON values are equal as the apiserver would store them: key order is ignored and a
 * key whose value is undefined counts as absent. Walks both once (no serialisation): this runs on
 * every reconcile, and an unchanged status is the common case.
 */
export function sameJSON(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const y = b as unknown[];
    if (a.length !== y.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJSON(a[i] ?? null, y[i] ?? null)) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    n++;
    if (!sameJSON(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}

/**
 * Sets the status when it differs from the object's. On 409 Conflict the object is re-read: if
 * its generation is unchanged our status still describes it and is written again on the fresh
 * resourceVersion; if the spec moved on, the write is dropped (a new reconcile is queued anyway).
 */
export async function patchStatus(kube: Kube, obj: OCIRepository, status: OCIRepositoryStatus): Promise<OCIRepository> {
  let current = obj;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (sameJSON(current.status ?? {}, status)) return current;
    const patch: Record<string, unknown> = { ...status };
    for (const k of Object.keys(current.status ?? {})) if (!(k in status)) patch[k] = null;
    try {
      return await kube.request<OCIRepository>('PATCH', `${objectPath(obj)}/status`, { metadata: { resourceVersion: current.metadata.resourceVersion }, status: patch }, 'application/merge-patch+json');
    } catch (err) {
      if (!(err instanceof KubeError)) throw err;
      if (err.status === 404) return current;
      if (err.status !== 409) throw err;
      const fresh = await getOrNull<OCIRepository>(kube, objectPath(obj));
      if (!fresh) return current;
      if (fresh.metadata.generation !== obj.metadata.generation) return fresh;
      current = fresh;
    }
  }
  throw new Error(`status update of ${obj.metadata.namespace}/${obj.metadata.name} kept conflicting`);
}

/** Adds or removes our finalizer, keeping other controllers' finalizers, with conflict retry. */
export async function patchFinalizers(kube: Kube, obj: OCIRepository, finalizers: string[]): Promise<OCIRepository> {
  let current = obj;
  const adding = finalizers.includes(Finalizer);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await kube.request<OCIRepository>('PATCH', objectPath(current), { metadata: { resourceVersion: current.metadata.resourceVersion, finalizers } }, 'application/merge-patch+json');
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return current;
      if (!(err instanceof KubeError) || err.status !== 409) throw err;
      const fresh = await getOrNull<OCIRepository>(kube, objectPath(current));
      if (!fresh) return current;
      current = fresh;
      const have = current.metadata.finalizers ?? [];
      finalizers = adding ? [...new Set([...have, Finalizer])] : have.filter((f) => f !== Finalizer);
    }
  }
  throw new Error(`finalizer update of ${obj.metadata.namespace}/${obj.metadata.name} kept conflicting`);
}
