import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { parse, parseAllDocuments } from 'yaml';
import { crdFiles, crdYaml } from '../../../src/api/crd.ts';
import { ConditionType as CT, Reason, setCondition, summarizeReady } from '../../../src/api/conditions.ts';
import { OCIRepositorySpec, type Condition } from '../../../src/api/schema.ts';
import { projectRoot } from '../../helpers/shared.ts';

test('crds/ and config/crd are generated from src/api/schema.ts (no drift)', () => {
  for (const f of crdFiles) assert.equal(readFileSync(path.join(projectRoot, f), 'utf8'), crdYaml(), `${f}: run \`make crds\``);
  // `kubectl apply -f crds/` applies every file there: plain CRD manifests only.
  for (const f of readdirSync(path.join(projectRoot, 'crds'))) {
    assert.equal((parse(readFileSync(path.join(projectRoot, 'crds', f), 'utf8')) as { kind?: string }).kind, 'CustomResourceDefinition', `crds/${f}`);
  }
  const crd = parse(crdYaml()) as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
  const text = JSON.stringify(crd);
  // Kubernetes structural schemas forbid these; TypeBox could emit them.
  for (const bad of ['patternProperties', '"const"', '"anyOf"', '"$id"', 'x-kubernetes-validations']) assert.ok(!text.includes(bad), bad);
});

test('samples validate against the spec schema the types come from', () => {
  const dir = path.join(projectRoot, 'config/samples');
  const files = readdirSync(dir).filter((f) => f.startsWith('ocirepository'));
  assert.ok(files.length >= 3);
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, f), 'utf8'))) {
      const obj = doc.toJS() as { spec: unknown };
      assert.ok(Value.Check(OCIRepositorySpec, obj.spec), `${f}: ${[...Value.Errors(OCIRepositorySpec, obj.spec)].map((e) => `${e.path} ${e.message}`).join('; ')}`);
    }
  }
  assert.equal(Value.Check(OCIRepositorySpec, { url: 'https://x', interval: '1m' }), false);
  assert.equal(Value.Check(OCIRepositorySpec, { url: 'oci://x/y', interval: '1 minute' }), false);
  assert.equal(Value.Check(OCIRepositorySpec, { url: 'oci://x/y', interval: '1m', layerSelector: { operation: 'move' } }), false);
});

const t0 = new Date('2026-01-01T00:00:00Z');
const gen = 3;
function conds(...cs: [string, Condition['status'], string, string][]): Condition[] {
  let out: Condition[] = [];
  for (const [type, status, reason, message] of cs) out = setCondition(out, type, status, reason, message, gen, t0);
  return out;
}
const ready = (cs: Condition[]) => summarizeReady(cs, gen, t0).find((c) => c.type === CT.Ready)!;

test('Ready summary follows Flux: failures first, bipolar SourceVerified, then positive conditions', () => {
  const stored = ['ArtifactInStorage', 'True', Reason.Succeeded, "stored artifact for digest 'v1@sha256:a'"] as [string, Condition['status'], string, string];
  assert.deepEqual(
    (({ status, reason, message }) => ({ status, reason, message }))(ready(conds(stored))),
    { status: 'True', reason: 'Succeeded', message: "stored artifact for digest 'v1@sha256:a'" },
  );
  const fetchFailed = ready(conds(stored, [CT.FetchFailed, 'True', Reason.OCIArtifactPullFailed, 'tag v2 not found'], [CT.Reconciling, 'True', Reason.ProgressingWithRetry, 'x']));
  assert.equal(fetchFailed.status, 'False');
  assert.equal(fetchFailed.reason, 'OCIArtifactPullFailed');
  const verifyFailed = ready(conds(stored, [CT.SourceVerified, 'False', Reason.VerificationError, 'bad signature'], [CT.FetchFailed, 'True', Reason.OCIArtifactPullFailed, 'x']));
  assert.equal(verifyFailed.reason, 'VerificationError');
  assert.equal(verifyFailed.message, 'bad signature');
  const storage = ready(conds([CT.StorageOperationFailed, 'True', Reason.ArchiveOperationFailed, 'disk full'], [CT.FetchFailed, 'True', Reason.AuthenticationFailed, 'x']));
  assert.equal(storage.reason, 'ArchiveOperationFailed');
  const progressing = ready(conds([CT.Reconciling, 'True', Reason.Progressing, 'building artifact']));
  assert.equal(progressing.status, 'Unknown');
  const stalled = ready(conds([CT.Stalled, 'True', Reason.URLInvalid, 'URL must not contain a tag']));
  assert.deepEqual([stalled.status, stalled.reason], ['False', 'URLInvalid']);
  const skipped = ready(conds(stored, [CT.SourceVerified, 'Unknown', Reason.VerificationSkipped, 'skipped']));
  assert.equal(skipped.status, 'True');
});

test('lastTransitionTime only moves when the status changes', () => {
  const a = setCondition([], CT.Ready, 'True', 'Succeeded', 'm1', 1, new Date('2026-01-01T00:00:00Z'));
  const b = setCondition(a, CT.Ready, 'True', 'Succeeded', 'm2', 2, new Date('2026-01-02T00:00:00Z'));
  assert.equal(b[0]!.lastTransitionTime, '2026-01-01T00:00:00Z');
  const c = setCondition(b, CT.Ready, 'False', 'Failed', 'm3', 2, new Date('2026-01-03T00:00:00Z'));
  assert.equal(c[0]!.lastTransitionTime, '2026-01-03T00:00:00Z');
});
