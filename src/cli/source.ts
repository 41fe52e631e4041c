// Flags shared by `pull` and `verify`: which artifact, and how to reach the registry. They map
// one-to-one onto OCIRepository spec fields, so what a user checks by hand is what the
// controller does.
import { readFileSync } from 'node:fs';
import type { OCIRepositorySpec } from '../api/schema.ts';
import { credentialsFromDockerConfig, type Credentials } from '../oci/auth.ts';
import { RegistryClient } from '../oci/client.ts';
import { parseRepositoryURL } from '../oci/reference.ts';
import type { Transport } from '../oci/transport.ts';
import { UsageError } from './args.ts';

export const sourceFlags = {
  tag: { type: 'string' },
  semver: { type: 'string' },
  'semver-filter': { type: 'string' },
  digest: { type: 'string' },
  insecure: { type: 'boolean', default: false },
  'ca-file': { type: 'string' },
  'cert-file': { type: 'string' },
  'key-file': { type: 'string' },
  'docker-config': { type: 'string' },
  username: { type: 'string' },
  'password-stdin': { type: 'boolean', default: false },
  timeout: { type: 'string', default: '60s' },
} as const;

export const sourceUsage = `  --tag TAG | --semver RANGE [--semver-filter RE] | --digest sha256:…   which artifact (default tag latest)
  --insecure                        plain HTTP registry
  --ca-file F  --cert-file F --key-file F   registry TLS (ca.crt, tls.crt, tls.key)
  --docker-config F                 credentials from a docker config.json / .dockerconfigjson
  --username U --password-stdin     basic credentials (password read from standard input)
  --timeout DUR                     bound on the whole operation (default 60s)
`;

export interface SourceValues {
  tag?: string;
  semver?: string;
  'semver-filter'?: string;
  digest?: string;
  insecure?: boolean;
  'ca-file'?: string;
  'cert-file'?: string;
  'key-file'?: string;
  'docker-config'?: string;
  username?: string;
  'password-stdin'?: boolean;
}

function read(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read '${path}': ${(err as Error).message}`);
  }
}

export function refFromFlags(v: SourceValues): OCIRepositorySpec['ref'] {
  return {
    ...(v.tag ? { tag: v.tag } : {}),
    ...(v.semver ? { semver: v.semver } : {}),
    ...(v['semver-filter'] ? { semverFilter: v['semver-filter'] } : {}),
    ...(v.digest ? { digest: v.digest } : {}),
  };
}

export function clientFromFlags(url: string, v: SourceValues, signal: AbortSignal, transport: Transport): RegistryClient {
  let ref;
  try {
    ref = parseRepositoryURL(url);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let credentials: Credentials | undefined;
  if (v['docker-config']) {
    try {
      credentials = credentialsFromDockerConfig(read(v['docker-config'], 'docker-config'), ref.registry, v['docker-config']);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (v.username) {
    const password = v['password-stdin'] ? readFileSync(0, 'utf8').replace(/\r?\n$/, '') : '';
    credentials = { username: v.username, password };
  }
  if (!!v['cert-file'] !== !!v['key-file']) throw new UsageError('--cert-file and --key-file go together');
  const tls = {
    ...(v['ca-file'] ? { ca: read(v['ca-file'], 'ca-file') } : {}),
    ...(v['cert-file'] ? { cert: read(v['cert-file'], 'cert-file') } : {}),
    ...(v['key-file'] ? { key: read(v['key-file'], 'key-file') } : {}),
  };
  return new RegistryClient(ref, { transport, ...(credentials ? { credentials } : {}), ...(Object.keys(tls).length ? { tls } : {}), insecure: !!v.insecure, signal, userAgent: 'oci-source-controller/0.1' });
}
