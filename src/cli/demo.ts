// `oci-source-controller demo`: a local, self-contained tour. Starts a real docker-registry and
// a real kube-apiserver + etcd on loopback (the same harness the integration tests use), pushes
// a sample artifact and a cosign signature, applies the CRD, RBAC and config/samples, runs the
// controller with the shipped RBAC, and shows what a user would see.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeLogger } from '../util/log.ts';
import { startController } from './run.ts';

const root = path.resolve(import.meta.dirname, '../..');

function say(step: string, text: string): void {
  process.stdout.write(`\x1b[1m${step.padEnd(10)}\x1b[0m ${text}\n`);
}

export const demoUsage = 'Usage: oci-source-controller demo\n\nRuns a local registry and API server and shows the controller pulling, verifying and serving artifacts.\n';

export async function demoCommand(argv: string[]): Promise<number> {
  // The harness lives with the tests; the demo is a development tool, not part of the image.
  const h = await import('../../test/harness/index.ts');
  const env = await import('../../test/helpers/controller-env.ts');
  const sign = await import('../../test/helpers/cosign-sign.ts');
  const sigs = await import('../../test/helpers/push-signatures.ts');
  const { tarGzNames } = await import('../../test/helpers/tar.ts');
  const dir = h.makeTempDir('osc-demo-');
  const started = Date.now();
  say('demo', `work directory ${dir}`);
  const [cluster, reg] = await Promise.all([h.startCluster(), h.startRegistry()]);
  let running: Awaited<ReturnType<typeof startController>> | undefined;
  try {
    say('registry', `docker-registry on ${reg.host}`);
    say('cluster', `etcd + kube-apiserver (${(await cluster.kubectl(['version', '-o', 'json'])).stdout.includes('v1.20') ? 'v1.20.2' : 'up'}) on ${cluster.server}`);

    const files = {
      'deployment.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 2\n',
      'service.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n',
      'kustomization.yaml': 'resources:\n  - deployment.yaml\n  - service.yaml\n',
      'docs/screenshot.png': 'not shipped: excluded by the default ignore rules',
    };
    const repo = 'manifests/podinfo';
    await h.pushTarGzArtifact(reg, repo, '6.4.0', { ...files, 'VERSION': '6.4.0\n' });
    const v650 = await h.pushTarGzArtifact(reg, repo, '6.5.0', { ...files, 'VERSION': '6.5.0\n' }, { annotations: { 'org.opencontainers.image.source': 'https://github.com/stefanprodan/podinfo', 'org.opencontainers.image.revision': '6.5.0@sha1:0123abc' } });
    await h.pushTarGzArtifact(reg, repo, '7.0.0-rc.1', { ...files, 'VERSION': '7.0.0-rc.1\n' });
    const key = sign.generateKey('p256');
    await sigs.pushCosignSig(reg, repo, v650.manifestDigest, [sign.signLegacy(key, v650.manifestDigest)]);
    say('push', `${repo}: 6.4.0, 6.5.0 (cosign-signed, ECDSA P-256), 7.0.0-rc.1`);

    const kubeconfig = await env.installController(cluster, dir);
    say('install', 'applied crds/ and config/rbac; the controller authenticates as ServiceAccount oci-source-system/oci-source-controller');
    await cluster.kubectlOk(['create', 'secret', 'generic', 'cosign-keys', '--from-literal=cosign.pub=' + key.pubPem]);
    for (const f of ['ocirepository.yaml', 'ocirepository-cosign.yaml']) {
      const yaml = readFileSync(path.join(root, 'config/samples', f), 'utf8').replace('oci://127.0.0.1:5000/', `oci://${reg.host}/`);
      await cluster.kubectlOk(['apply', '-f', '-'], { input: yaml });
    }
    say('apply', 'config/samples: podinfo (semver ">=6.0.0"), podinfo-signed (tag 6.5.0, verify cosign) + Secret cosign-keys');

    running = await startController(
      { kubeconfig, concurrent: 4, storagePath: path.join(dir, 'data'), storageAddr: '127.0.0.1:0', retentionRecords: 2, retentionTTLms: 60_000, artifactMaxSize: 512 << 20, maxSignatures: 10, minRetryMs: 500, maxRetryMs: 5000, jitterPercent: 5, metricsAddr: '', logLevel: 'info' },
      makeLogger('info', path.join(dir, 'controller.log')),
    );
    say('run', `controller started; artifacts served on http://${running.storage.opts.advertisedAddr}/ (logs: ${path.join(dir, 'controller.log')})`);

    const t0 = Date.now();
    const a = await env.waitRepo(cluster, 'default', 'podinfo', env.ready, 'Ready');
    const b = await env.waitRepo(cluster, 'default', 'podinfo-signed', env.ready, 'Ready');
    say('ready', `both objects Ready in ${Date.now() - t0} ms`);
    process.stdout.write('\n$ kubectl get ocirepo -o wide\n' + (await cluster.kubectlOk(['get', 'ocirepo', '-o', 'wide'])) + '\n');
    say('semver', `podinfo resolved ">=6.0.0" to ${a.status!.artifact!.revision.split('@')[0]} (pre-release 7.0.0-rc.1 skipped, as Flux does)`);
    say('verified', (env.cond(b, 'SourceVerified')?.message ?? '').slice(0, 220));

    const res = await fetch(b.status!.artifact!.url);
    const body = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    say('download', `GET ${b.status!.artifact!.url}\n           ${res.status}, ${body.length} bytes, digest ${digest === b.status!.artifact!.digest ? 'matches' : 'DOES NOT match'} status.artifact.digest`);
    const names = tarGzNames(body).filter((n) => !n.endsWith('/'));
    say('content', `${names.join(', ')} (docs/screenshot.png dropped by the default .sourceignore rules)`);

    // Someone moves the tag to unsigned content: the controller refuses it and keeps serving 6.5.0.
    const evil = await h.pushTarGzArtifact(reg, repo, '6.5.0', { ...files, 'deployment.yaml': files['deployment.yaml'].replace('replicas: 2', 'replicas: 2\n  # injected') });
    await cluster.kubectlOk(['annotate', '--overwrite', 'ocirepository/podinfo-signed', `reconcile.ocisource.dev/requestedAt=${Date.now()}`]);
    const rejected = await env.waitRepo(cluster, 'default', 'podinfo-signed', (o) => env.cond(o, 'SourceVerified')?.status === 'False', 'rejection');
    say('tamper', `tag 6.5.0 moved to unsigned ${evil.manifestDigest.slice(0, 19)}…`);
    say('rejected', `Ready=${env.cond(rejected, 'Ready')?.status} reason=${env.cond(rejected, 'Ready')?.reason}\n           ${env.cond(rejected, 'Ready')?.message.slice(0, 300)}`);
    const still = await fetch(rejected.status!.artifact!.url);
    await still.arrayBuffer();
    say('serving', `last good artifact ${rejected.status!.artifact!.revision.slice(0, 26)}… still served (${still.status})`);
    process.stdout.write('\n$ kubectl get ocirepo\n' + (await cluster.kubectlOk(['get', 'ocirepo'])) + '\n');
    say('done', `demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s; everything was started locally and is now stopped`);
    return 0;
  } finally {
    await running?.stop();
    await Promise.all([cluster.stop(), reg.stop()]);
    h.removeTempDir(dir);
  }
}
