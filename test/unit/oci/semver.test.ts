import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTagVersion, pickSemverTag } from '../../../src/oci/semver.ts';

const tags = ['1.0.0', 'v1.2.0', '1.10.0', '1.9', '2.0.0-rc.1', '2.0.0', 'latest', 'sha256-abc.sig', '1.10.0-beta.1', '3'];

test('lenient tag versions like Masterminds NewVersion', () => {
  assert.equal(parseTagVersion('v1.2.3')?.version, '1.2.3');
  assert.equal(parseTagVersion('1.9')?.version, '1.9.0');
  assert.equal(parseTagVersion('3')?.version, '3.0.0');
  assert.equal(parseTagVersion('latest'), null);
  assert.equal(parseTagVersion('1.2.3.4'), null);
});

test('picks the highest match; pre-releases only when the range names one', () => {
  assert.equal(pickSemverTag(tags, '>=1.0.0 <2.0.0')?.tag, '1.10.0');
  assert.equal(pickSemverTag(tags, '>=1.0.0, <2.0.0')?.tag, '1.10.0');
  assert.equal(pickSemverTag(tags, '*')?.tag, '3');
  assert.equal(pickSemverTag(tags, '>=2.0.0-0 <3.0.0')?.tag, '2.0.0');
  assert.equal(pickSemverTag(['2.0.0-rc.1', '2.0.0-rc.2'], '>=2.0.0-0')?.tag, '2.0.0-rc.2');
  assert.equal(pickSemverTag(['2.0.0-rc.1'], '>=1.0.0'), null);
  assert.equal(pickSemverTag(tags, '~1.2')?.tag, 'v1.2.0');
  assert.equal(pickSemverTag(tags, '>=9'), null);
});

test('semverFilter is applied before matching', () => {
  assert.equal(pickSemverTag(['1.0.0-dev', '1.1.0-dev', '1.2.0'], '>=1.0.0-0', '.*-dev$')?.tag, '1.1.0-dev');
  assert.throws(() => pickSemverTag(tags, '*', '(['), /failed to compile semverFilter/);
  assert.throws(() => pickSemverTag(tags, 'not a range !!'), /improper semver constraint/);
});

test('Helm chart tags encode + as _', () => {
  const helm = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
  assert.equal(pickSemverTag(['1.0.0_build.1', '1.0.0_build.2', '0.9.0'], '>=1.0.0', undefined, helm)?.tag, '1.0.0_build.1');
  assert.equal(pickSemverTag(['1.0.0_build.1'], '>=1.0.0'), null);
});
