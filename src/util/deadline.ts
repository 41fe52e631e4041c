// A deadline for one unit of work that ends with the work. AbortSignal.timeout cannot be
// cancelled: every reconcile's timer stayed armed for spec.timeout after the reconcile was done,
// then fired, built its DOMException and dispatched to listeners nobody needed any more, and
// AbortSignal.any kept a dependent on the manager's signal meanwhile. A thousand objects carried a
// thousand of these, and firing them was a tenth of the steady-state work.

export interface Deadline {
  /** Aborts after the time given, or when the parent aborts (with the parent's reason). */
  readonly signal: AbortSignal;
  /** Clears the timer and detaches from the parent; the signal stays as it is. */
  dispose(): void;
}

export function deadline(ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  // The same reason AbortSignal.timeout gives, so messages read the same.
  const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  timer.unref();
  const onParent = () => controller.abort(parent!.reason);
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}
