// `oci://host[:port]/repository` parsing, with Docker Hub normalisation.

export interface RepositoryRef {
  /** Registry as users write it, normalised ("docker.io" for Docker Hub). Used in trust-policy scopes. */
  registry: string;
  /** Host (and port) the API is served from ("registry-1.docker.io" for Docker Hub). */
  apiHost: string;
  repository: string;
}

export class InvalidURLError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidURLError';
  }
}

const repoComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const hostPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

export function parseRepositoryURL(url: string): RepositoryRef {
  if (!url.startsWith('oci://')) throw new InvalidURLError(`URL must be in format 'oci://<domain>/<org>/<repo>', got '${url}'`);
  const rest = url.slice('oci://'.length).replace(/\/+$/, '');
  if (rest.includes('@')) throw new InvalidURLError(`URL must not contain a digest; remove '@${rest.split('@')[1]}' and use spec.ref.digest`);
  const slash = rest.indexOf('/');
  if (slash <= 0) throw new InvalidURLError(`URL must be in format 'oci://<domain>/<org>/<repo>', got '${url}'`);
  let host = rest.slice(0, slash);
  let repository = rest.slice(slash + 1);
  const lastSeg = repository.split('/').pop() ?? '';
  const colon = lastSeg.indexOf(':');
  if (colon >= 0) throw new InvalidURLError(`URL must not contain a tag; remove ':${lastSeg.slice(colon + 1)}' and use spec.ref.tag`);
  if (!hostPattern.test(host)) throw new InvalidURLError(`invalid registry host '${host}' in '${url}'`);
  for (const part of repository.split('/')) {
    if (!repoComponent.test(part)) throw new InvalidURLError(`invalid repository name '${repository}' in '${url}': components must be lowercase alphanumerics separated by '.', '_', '__' or '-'`);
  }
  host = host.toLowerCase();
  let apiHost = host;
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') {
    host = 'docker.io';
    apiHost = 'registry-1.docker.io';
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  return { registry: host, apiHost, repository };
}

export const digestPattern = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;

export function isDigest(s: string): boolean {
  return digestPattern.test(s);
}
export function isValidTag(s: string): boolean {
  return tagPattern.test(s);
}
