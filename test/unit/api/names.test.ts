// Secret and ServiceAccount names from a spec go into API paths: the schema (and so the
// apiserver) accepts only DNS-1123 subdomains, and the controller checks again before a request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { isDNS1123Subdomain, OCIRepositorySpec, type OCIRepository } from '../../../src/api/schema.ts';
import { AuthConfigError, clientOptions, verifySecret, type KubeReader } from '../../../src/controller/secrets.ts';
import { VerifyConfigError } from '../../../src/verify/types.ts';

const bad = ['../../kube-system/secrets/x', 'a/b', 'Creds', 'creds?watch=true', 'creds%2F..', '-creds', 'creds.', '', 'a'.repeat(254)];
const good = ['creds', 'my-creds.v2', '0', 'a'.repeat(253)];

test('names are DNS-1123 subdomains', () => {
  for (const n of good) assert.equal(isDNS1123Subdomain(n), true, n);
  for (const n of bad) assert.equal(isDNS1123Subdomain(n), false, n);
});

test('the spec schema refuses other names in every Secret reference and serviceAccountName', () => {
  const base = { url: 'oci://r.test/app', interval: '1m' };
  const refs = (name: string) => [
    { secretRef: { name } },
    { certSecretRef: { name } },
    { proxySecretRef: { name } },
    { serviceAccountName: name },
    { verify: { provider: 'cosign', secretRef: { name } } },
    { verify: { provider: 'cosign', trustedRootSecretRef: { name } } },
  ];
  for (const n of good) for (const r of refs(n)) assert.ok(Value.Check(OCIRepositorySpec, { ...base, ...r }), `${JSON.stringify(r)} should pass`);
  for (const n of bad) for (const r of refs(n)) assert.equal(Value.Check(OCIRepositorySpec, { ...base, ...r }), false, `${JSON.stringify(r)} should fail`);
});

test('the controller refuses a bad name before any API request (objects stored before the CRD checked)', async () => {
  const requests: string[] = [];
  const getter: KubeReader = {
    getSecret: async (ns, name) => (requests.push(`secret ${ns}/${name}`), null),
    getServiceAccount: async (ns, name) => (requests.push(`sa ${ns}/${name}`), { metadata: { name }, imagePullSecrets: [{ name: '../evil' }, { name: 'pull' }] }),
  };
  const obj = (spec: Partial<OCIRepository['spec']>) => ({ apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name: 'a', namespace: 'default' }, spec: { url: 'oci://r.test/app', interval: '1m', ...spec } }) as OCIRepository;
  for (const spec of [{ secretRef: { name: '../x' } }, { certSecretRef: { name: 'a/b' } }, { proxySecretRef: { name: 'P' } }, { serviceAccountName: 'sa/../x' }]) {
    await assert.rejects(clientOptions(obj(spec), 'r.test', getter), (e: Error) => e instanceof AuthConfigError && /is not a valid Kubernetes object name \(a DNS-1123 subdomain/.test(e.message), JSON.stringify(spec));
  }
  await assert.rejects(verifySecret(getter, 'default', '../keys'), (e: Error) => e instanceof VerifyConfigError && /not a valid Kubernetes object name/.test(e.message));
  assert.deepEqual(requests, []);
  // A ServiceAccount's imagePullSecrets are not checked by the apiserver: bad names are skipped.
  await clientOptions(obj({ serviceAccountName: 'builder' }), 'r.test', getter);
  assert.deepEqual(requests, ['sa default/builder', 'secret default/pull']);
});
