// `make demo`: the path a GitOps user cares about, on loopback only. A real docker-registry and a
// real kube-apiserver + etcd (the test harness), Flux's ExternalArtifact CRD, and our controller
// with the RBAC we ship. One artifact is signed with Notation (JWS, trust policy with a named `ca`
// store) and with cosign; each OCIRepository verifies it, we serve it, and publish it as an
// ExternalArtifact that is then consumed exactly as Flux's fetcher does. Then the tag is moved to
// tampered content: rejected, while the ExternalArtifacts keep the last verified revision.
//
// This is a development tool that lives outside src/ on purpose: it uses the test harness and
// signers, which are not part of the image. `oci-source-controller demo` loads it from a checkout.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startController, type ControllerConfig } from '../src/cli/run.ts';
import { makeLogger } from '../src/util/log.ts';
import { EKU } from '../src/verify/x509/certs.ts';
import * as h from '../test/harness/index.ts';
import * as env from '../test/helpers/controller-env.ts';
import { ArtifactNotFoundError, fetchLikeFlux } from '../test/helpers/flux-fetch.ts';
import * as cosign from '../test/helpers/cosign-sign.ts';
import * as notation from '../test/helpers/notation-sign.ts';
import { pushCosignSig, pushReferrer } from '../test/helpers/push-signatures.ts';
import { projectRoot, vectorPath } from '../test/helpers/shared.ts';

const NotationSignature = 'application/vnd.cncf.notary.signature';

function say(step: string, text: string): void {
  process.stdout.write(`\x1b[1m${step.padEnd(10)}\x1b[0m ${text}\n`);
}
const indent = (s: string) => s.replace(/\n/g, '\n           ');

interface EA {
  metadata: { name: string };
  spec: { sourceRef: { apiVersion: string; kind: string; name: string } };
  status?: { artifact?: { url: string; digest: string; revision: string; path: string }; conditions?: env.Cond[] };
}

export async function runDemo(): Promise<number> {
  const dir = h.makeTempDir('osc-demo-');
  const started = Date.now();
  say('demo', `work directory ${dir}`);
  const [cluster, reg] = await Promise.all([h.startCluster(), h.startRegistry()]);
  let running: Awaited<ReturnType<typeof startController>> | undefined;
  try {
    say('registry', `docker-registry on ${reg.host}`);
    say('cluster', `etcd + kube-apiserver v1.20.2 on ${cluster.server}`);
    const waitEA = async (name: string, pred: (ea: EA) => boolean, what: string): Promise<EA> => {
      const deadline = Date.now() + 60_000;
      let last: EA | undefined;
      while (Date.now() < deadline) {
        const r = await cluster.request<EA>('GET', `/apis/source.toolkit.fluxcd.io/v1/namespaces/default/externalartifacts/${name}`);
        if (r.status === 200 && pred(r.body)) return r.body;
        last = r.body;
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new Error(`timed out waiting for ExternalArtifact ${name}: ${what}; last: ${JSON.stringify(last?.status ?? null)}`);
    };
    const eaCond = (ea: EA, type: string) => ea.status?.conditions?.find((c) => c.type === type);

    // --- What a publisher pushes: manifests, signed with cosign and with Notation. ---
    const files = {
      'deployment.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 2\n',
      'service.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n',
      'kustomization.yaml': 'resources:\n  - deployment.yaml\n  - service.yaml\n',
    };
    const repo = 'manifests/podinfo';
    await h.pushTarGzArtifact(reg, repo, '6.4.0', { ...files, VERSION: '6.4.0\n' });
    const v650 = await h.pushTarGzArtifact(reg, repo, '6.5.0', { ...files, VERSION: '6.5.0\n' }, { annotations: { 'org.opencontainers.image.source': 'https://github.com/stefanprodan/podinfo', 'org.opencontainers.image.revision': '6.5.0@sha1:0123abc' } });
    const key = cosign.generateKey('p256');
    await pushCosignSig(reg, repo, v650.manifestDigest, [cosign.signLegacy(key, v650.manifestDigest)]);
    const root = await notation.issue({ subject: 'CN=Contoso Root CA,O=Contoso,ST=WA,C=US', ca: true, key: { kind: 'rsa', bits: 2048 } });
    const leaf = await notation.issue({ subject: 'CN=contoso.io,O=Contoso,L=Seattle,ST=WA,C=US', issuer: root, eku: [EKU.codeSigning], key: { kind: 'rsa', bits: 2048 } });
    const subject = { mediaType: h.OCI_MANIFEST_MEDIA_TYPE, digest: v650.manifestDigest, size: v650.manifestBytes.length };
    const jws = await notation.signJWS({ target: subject, chain: [leaf, root], alg: 'PS256' });
    await pushReferrer(reg, repo, subject, NotationSignature, jws, 'application/jose+json');
    say('push', `${repo}: 6.4.0, 6.5.0 signed twice: cosign (ECDSA P-256 .sig) and Notation (JWS, RSA-PSS, "CN=contoso.io" issued by "CN=Contoso Root CA")`);

    // --- The cluster: our CRD + RBAC, and Flux's own CRDs. ---
    const kubeconfig = await env.installController(cluster, dir);
    await cluster.kubectlOk(['apply', '-f', vectorPath('flux', 'source.toolkit.fluxcd.io_externalartifacts.yaml')]);
    await cluster.kubectlOk(['apply', '--validate=false', '-f', vectorPath('flux', 'kustomize.toolkit.fluxcd.io_kustomizations.yaml')]);
    await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/externalartifacts.source.toolkit.fluxcd.io', 'crd/kustomizations.kustomize.toolkit.fluxcd.io']);
    say('install', 'crds/ + config/rbac (the controller authenticates as ServiceAccount oci-source-system/oci-source-controller), and Flux\'s ExternalArtifact and Kustomization CRDs');

    await cluster.kubectlOk(['create', 'secret', 'generic', 'cosign-keys', `--from-literal=cosign.pub=${key.pubPem}`]);
    // A trust policy as the AKS guides write it: a named `ca` store and the signer's identity.
    const policy = {
      version: '1.0',
      trustPolicies: [{ name: 'podinfo', registryScopes: [`${reg.host}/${repo}`], signatureVerification: { level: 'strict' }, trustStores: ['ca:contoso'], trustedIdentities: ['x509.subject: C=US, ST=WA, L=Seattle, O=Contoso, CN=contoso.io'] }],
    };
    writeFileSync(path.join(dir, 'trustpolicy.json'), JSON.stringify(policy, null, 2));
    writeFileSync(path.join(dir, 'ca.contoso.pem'), notation.pem(root));
    await cluster.kubectlOk(['create', 'secret', 'generic', 'notation-config', `--from-file=trustpolicy.json=${path.join(dir, 'trustpolicy.json')}`, `--from-file=ca.contoso.pem=${path.join(dir, 'ca.contoso.pem')}`]);
    for (const f of ['ocirepository.yaml', 'ocirepository-cosign.yaml', 'ocirepository-notation.yaml']) {
      const yaml = readFileSync(path.join(projectRoot, 'config/samples', f), 'utf8').replace('oci://127.0.0.1:5000/', `oci://${reg.host}/`);
      await cluster.kubectlOk(['apply', '-f', '-'], { input: yaml });
    }
    await cluster.kubectlOk(['apply', '-f', path.join(projectRoot, 'config/samples/flux/kustomization-podinfo.yaml')]);
    say('apply', 'config/samples: podinfo (semver, unsigned), podinfo-signed (verify cosign), podinfo-notation (verify notation)\n           + Secrets cosign-keys and notation-config (trustpolicy.json, ca.contoso.pem for store ca:contoso)\n           + config/samples/flux/kustomization-podinfo.yaml: a Flux Kustomization with sourceRef ExternalArtifact/podinfo-signed\n             (accepted by Flux\'s schema; no kustomize-controller runs here, the demo fetches as it would)');

    const cfg: ControllerConfig = {
      kubeconfig, concurrent: 4, storagePath: path.join(dir, 'data'), storageAddr: '127.0.0.1:0', retentionRecords: 2, retentionTTLms: 60_000, artifactMaxSize: 512 << 20, maxSignatures: 10,
      minRetryMs: 500, maxRetryMs: 5000, jitterPercent: 5, requeueAlignMs: 1000, metricsAddr: '', logLevel: 'info', publishExternalArtifacts: true, externalArtifactDiscoveryMs: 60_000,
    };
    running = await startController(cfg, makeLogger('info', path.join(dir, 'controller.log')));
    say('run', `controller started; artifacts served on http://${running.storage.opts.advertisedAddr}/ (logs: ${path.join(dir, 'controller.log')})`);

    const t0 = Date.now();
    const names = ['podinfo', 'podinfo-signed', 'podinfo-notation'];
    const repos = await Promise.all(names.map((n) => env.waitRepo(cluster, 'default', n, env.ready, 'Ready')));
    const eas = await Promise.all(names.map((n) => waitEA(n, (ea) => !!ea.status?.artifact && eaCond(ea, 'Ready')?.status === 'True', 'published')));
    say('ready', `three OCIRepositories Ready and published as ExternalArtifacts in ${Date.now() - t0} ms`);
    process.stdout.write('\n$ kubectl get ocirepo\n' + (await cluster.kubectlOk(['get', 'ocirepo'])) + '\n');
    process.stdout.write('$ kubectl get externalartifacts\n' + (await cluster.kubectlOk(['get', 'externalartifacts'])) + '\n');
    say('verified', indent(`podinfo-signed:   ${env.cond(repos[1]!, 'SourceVerified')?.message.slice(0, 230)}\npodinfo-notation: ${env.cond(repos[2]!, 'SourceVerified')?.message.slice(0, 230)}`));

    // --- Consume each ExternalArtifact as kustomize-controller does. ---
    for (const ea of eas) {
      const a = ea.status!.artifact!;
      const out = path.join(dir, 'flux', ea.metadata.name);
      const got = await fetchLikeFlux(a.url, a.digest, out);
      const version = readFileSync(path.join(out, 'VERSION'), 'utf8').trim();
      say('fetch', indent(`ExternalArtifact/${ea.metadata.name} (sourceRef ${ea.spec.sourceRef.kind}/${ea.spec.sourceRef.name}, SourceVerified=${eaCond(ea, 'SourceVerified')?.status ?? 'absent: no spec.verify'})\nGET ${a.url}\n${got.body.length} bytes, digest matches ${a.digest.slice(0, 19)}…, extracted ${got.files.join(', ')} (VERSION ${version})`));
    }

    // --- Someone moves the tag to content nobody signed. ---
    const evil = await h.pushTarGzArtifact(reg, repo, '6.5.0', { ...files, 'deployment.yaml': files['deployment.yaml'].replace('replicas: 2', 'replicas: 2\n  # injected'), VERSION: '6.5.0\n' });
    say('tamper', `tag 6.5.0 moved to unsigned ${evil.manifestDigest.slice(0, 19)}…`);
    for (const n of ['podinfo-signed', 'podinfo-notation']) await cluster.kubectlOk(['annotate', '--overwrite', `ocirepository/${n}`, `reconcile.ocisource.dev/requestedAt=${Date.now()}`]);
    for (const [i, n] of ['podinfo-signed', 'podinfo-notation'].entries()) {
      const rejected = await env.waitRepo(cluster, 'default', n, (o) => env.cond(o, 'SourceVerified')?.status === 'False', 'rejection');
      const ea = await waitEA(n, (x) => eaCond(x, 'Ready')?.status === 'False', 'Ready False');
      const a = ea.status!.artifact!;
      if (a.revision !== eas[i + 1]!.status!.artifact!.revision) throw new Error(`ExternalArtifact ${n} moved to ${a.revision}`);
      const out = path.join(dir, 'flux', `${n}-after`);
      await fetchLikeFlux(a.url, a.digest, out);
      const deployment = readFileSync(path.join(out, 'deployment.yaml'), 'utf8');
      say('rejected', indent(`${n}: Ready=${env.cond(rejected, 'Ready')?.status} ${env.cond(rejected, 'Ready')?.reason}: ${env.cond(rejected, 'Ready')?.message.slice(0, 150)}\nExternalArtifact/${n}: Ready=False ${eaCond(ea, 'Ready')?.reason}, still ${a.revision.slice(0, 26)}… (SourceVerified=${eaCond(ea, 'SourceVerified')?.status});\nFlux still fetches it: digest ok, deployment.yaml ${deployment.includes('injected') ? 'TAMPERED' : 'as signed'}`));
    }
    process.stdout.write('\n$ kubectl get externalartifacts\n' + (await cluster.kubectlOk(['get', 'externalartifacts'])) + '\n');

    // --- Deleting a source removes its ExternalArtifact; its URL answers 404 = "not ready" to Flux. ---
    const gone = eas[0]!.status!.artifact!;
    await cluster.kubectlOk(['delete', 'ocirepository/podinfo', '--wait=true', '--timeout=30s']);
    const left = await cluster.request('GET', '/apis/source.toolkit.fluxcd.io/v1/namespaces/default/externalartifacts/podinfo');
    let fetched = 'served';
    try {
      await fetchLikeFlux(gone.url, gone.digest, path.join(dir, 'flux', 'gone'));
    } catch (err) {
      fetched = err instanceof ArtifactNotFoundError ? 'answers 404, which Flux reads as "not ready yet"' : (err as Error).message;
    }
    say('delete', `ocirepository/podinfo deleted: ExternalArtifact/podinfo ${left.status === 404 ? 'removed by our finalizer' : 'STILL THERE'}; its old URL ${fetched}`);
    say('done', `demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s; everything was started locally and is now stopped`);
    return 0;
  } finally {
    await running?.stop();
    await Promise.all([cluster.stop(), reg.stop()]);
    h.removeTempDir(dir);
  }
}
