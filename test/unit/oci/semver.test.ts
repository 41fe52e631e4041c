import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitError } from '../../../src/api/limits.ts';
import { parseTagVersion, pickSemverTag } from '../../../src/oci/semver.ts';

const tags = ['1.0.0', 'v1.2.0', '1.10.0', '1.9', '2.0.0-rc.1', '2.0.0', 'latest', 'sha256-abc.sig', '1.10.0-beta.1', '3'];

test('lenient tag versions like Masterminds NewVersion', () => {
  assert.equal(parseTagVersion('v1.2.3')?.version, '1.2.3');
  assert.equal(parseTagVersion('1.9')?.version, '1.9.0');
  assert.equal(parseTagVersion('3')?.version, '3.0.0');
  assert.equal(parseTagVersion('latest'), null);
  assert.equal(parseTagVersion('1.2.3.4'), null);
});

test('picks the highest match; pre-releases only when the range names one', async () => {
  assert.equal((await pickSemverTag(tags, '>=1.0.0 <2.0.0'))?.tag, '1.10.0');
  assert.equal((await pickSemverTag(tags, '>=1.0.0, <2.0.0'))?.tag, '1.10.0');
  assert.equal((await pickSemverTag(tags, '*'))?.tag, '3');
  assert.equal((await pickSemverTag(tags, '>=2.0.0-0 <3.0.0'))?.tag, '2.0.0');
  assert.equal((await pickSemverTag(['2.0.0-rc.1', '2.0.0-rc.2'], '>=2.0.0-0'))?.tag, '2.0.0-rc.2');
  assert.equal(await pickSemverTag(['2.0.0-rc.1'], '>=1.0.0'), null);
  assert.equal((await pickSemverTag(tags, '~1.2'))?.tag, 'v1.2.0');
  assert.equal(await pickSemverTag(tags, '>=9'), null);
});

test('semverFilter is applied before matching', async () => {
  assert.equal((await pickSemverTag(['1.0.0-dev', '1.1.0-dev', '1.2.0'], '>=1.0.0-0', '.*-dev$'))?.tag, '1.1.0-dev');
  await assert.rejects(pickSemverTag(tags, '*', '(['), /failed to compile semverFilter/);
  await assert.rejects(pickSemverTag(tags, 'not a range !!'), /improper semver constraint/);
});

test('Helm chart tags encode + as _', async () => {
  const helm = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
  assert.equal((await pickSemverTag(['1.0.0_build.1', '1.0.0_build.2', '0.9.0'], '>=1.0.0', undefined, helm))?.tag, '1.0.0_build.1');
  assert.equal(await pickSemverTag(['1.0.0_build.1'], '>=1.0.0'), null);
});

test('a backtracking semverFilter is stopped by its time budget, naming it', async () => {
  const hostile = Array.from({ length: 50 }, (_, i) => `${'a'.repeat(30 + (i % 5))}!`);
  const started = performance.now();
  await assert.rejects(pickSemverTag(hostile, '*', '^(a+)+$', undefined, { semverFilterMaxTime: 200 }), (e: Error) => e instanceof LimitError && e.limit === 'semverFilterMaxTime' && /semverFilter '\^\(a\+\)\+\$' took more than 200 ms of CPU/.test(e.message));
  assert.ok(performance.now() - started < 30_000);
});

test('100,000 tags are matched in slices, and the event loop keeps turning', async () => {
  const many = Array.from({ length: 100_000 }, (_, i) => `1.${i}.0`);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const pick = await pickSemverTag(many, '>=1.0.0', '^1\\.');
    assert.equal(pick?.tag, '1.99999.0');
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, 'timers ran while matching');
});
