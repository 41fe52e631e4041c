// `oci-source-controller pull`: resolve, pull and store one artifact exactly as the controller
// does, into a directory; prints the revision and the tarball digest as JSON.
import path from 'node:path';
import { parseDuration } from '../controller/queue.ts';
import { resolveRef } from '../oci/resolve.ts';
import { Transport } from '../oci/transport.ts';
import { buildArtifact } from '../storage/build.ts';
import { Storage } from '../storage/store.ts';
import { parse, parseSize, UsageError } from './args.ts';
import { clientFromFlags, refFromFlags, sourceFlags, sourceUsage } from './source.ts';

export const pullUsage = `Usage: oci-source-controller pull <oci://host/repo> -o DIR [flags]

Resolves the reference, pulls the artifact by digest and stores it as the controller would
(DIR/ocirepository/<namespace>/<name>/<digest>.tar.gz). Prints JSON with the revision and digest.

${sourceUsage}  --layer-media-type MT            select the first layer of this media type
  --operation extract|copy          re-archive the tar+gzip layer (default) or store it as is
  --ignore PATTERNS                 extra .gitignore-style exclusions (extract)
  --artifact-max-size SIZE          default 512Mi; 0 = unlimited
  --name NS/NAME                    object name used in the storage path (default default/artifact)
  -o, --output DIR                  storage directory (required)
`;

export async function pullCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, {
    ...sourceFlags,
    'layer-media-type': { type: 'string' },
    operation: { type: 'string', default: 'extract' },
    ignore: { type: 'string' },
    'artifact-max-size': { type: 'string', default: '512Mi' },
    name: { type: 'string', default: 'default/artifact' },
    output: { type: 'string', short: 'o' },
  });
  const url = positionals[0];
  if (!url || positionals.length > 1) throw new UsageError('pull takes exactly one oci:// URL');
  if (!v.output) throw new UsageError('--output DIR is required');
  if (v.operation !== 'extract' && v.operation !== 'copy') throw new UsageError(`--operation must be extract or copy`);
  const [ns, name] = v.name!.split('/');
  if (!ns || !name) throw new UsageError('--name must be NAMESPACE/NAME');
  const signal = AbortSignal.timeout(parseDuration(v.timeout!));
  const transport = new Transport();
  try {
    const client = clientFromFlags(url, v, signal, transport);
    const layerSelector = { ...(v['layer-media-type'] ? { mediaType: v['layer-media-type'] } : {}), operation: v.operation as 'extract' | 'copy' };
    const resolved = await resolveRef(client, refFromFlags(v), layerSelector.mediaType);
    const storage = new Storage({ root: path.resolve(v.output), retentionRecords: 2, retentionTTLms: 60_000, advertisedAddr: 'localhost' });
    const target = storage.artifactPath(ns, name, resolved.descriptor.digest);
    const built = await buildArtifact({ client, manifestDigest: resolved.descriptor.digest, layerSelector, ...(v.ignore !== undefined ? { ignore: v.ignore } : {}), storage, target, limits: { artifactMaxSize: parseSize(v['artifact-max-size']!) } });
    await storage.setLatest(target);
    process.stdout.write(
      JSON.stringify({ revision: resolved.revision, manifestDigest: resolved.descriptor.digest, digest: built.file.digest, size: built.file.size, path: storage.abs(target), layer: built.layer.digest, files: built.files, annotations: built.manifest.annotations ?? {} }, null, 2) + '\n',
    );
    return 0;
  } finally {
    await transport.close();
  }
}
