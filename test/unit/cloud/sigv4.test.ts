// The ECR stand-in's SigV4 check (AWS's @smithy/signature-v4) against what the controller sends
// (aws4): they agree on a good request and disagree on every kind of tampering, so the
// integration test's "ECR accepted the signature" can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import aws4 from 'aws4';
import { verifySigV4 } from '../../harness/cloud/sigv4.ts';

const creds = { accessKeyId: 'ASIATESTKEY', secretAccessKey: 'c2VjcmV0', sessionToken: 'session-token' };
const keys = (id: string) => (id === creds.accessKeyId ? creds : undefined);
const expect = { region: 'us-west-2', service: 'ecr' };

function signed(over: { region?: string; body?: string; host?: string } = {}) {
  const body = over.body ?? '{}';
  const r = aws4.sign({ host: over.host ?? 'api.ecr.us-west-2.amazonaws.com:8443', path: '/', method: 'POST', service: 'ecr', region: over.region ?? 'us-west-2', body, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' } }, creds);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  return { method: 'POST', path: '/', headers, body };
}

test('aws4 signatures verify with the AWS SDK signer; tampering does not', async () => {
  assert.deepEqual(await verifySigV4(signed(), expect, keys), { ok: true, accessKeyId: creds.accessKeyId });
  const body = signed();
  body.body = '{"registryIds":["1"]}';
  assert.equal((await verifySigV4(body, expect, keys)).ok, false);
  const target = signed();
  target.headers['x-amz-target'] = 'AmazonEC2ContainerRegistry_V20150921.BatchGetImage';
  assert.equal((await verifySigV4(target, expect, keys)).ok, false);
  const host = signed();
  host.headers.host = 'api.ecr.us-east-1.amazonaws.com:8443';
  assert.equal((await verifySigV4(host, expect, keys)).ok, false);
  assert.equal((await verifySigV4(signed({ region: 'us-east-1' }), expect, keys)).ok, false);
  const token = signed();
  token.headers['x-amz-security-token'] = 'other';
  assert.equal((await verifySigV4(token, expect, keys)).ok, false);
  assert.equal((await verifySigV4(signed(), expect, (id) => (id === creds.accessKeyId ? { ...creds, secretAccessKey: 'wrong' } : undefined))).ok, false);
  assert.equal((await verifySigV4(signed(), expect, keys, Date.now() + 10 * 60_000)).ok, false);
});
