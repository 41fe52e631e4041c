// undici, loaded on the first registry or cloud request rather than at start: it is about 9 MB of
// RSS, which a controller with no objects and most CLI invocations never need.
let loaded: Promise<typeof import('undici')> | undefined;

export function undici(): Promise<typeof import('undici')> {
  return (loaded ??= import('undici'));
}
