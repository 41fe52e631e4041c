// SigV4 verification for the ECR API stand-in. The controller signs with aws4; this re-signs the
// request as received with AWS's own signer (@smithy/signature-v4, the one inside the AWS SDK) at
// the request's X-Amz-Date and compares: two independent implementations must agree, and any
// change to method, path, signed headers, body, region, service or key breaks the match.
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

export interface SigV4Key {
  secretAccessKey: string;
  sessionToken: string;
}

export type SigV4Result = { ok: true; accessKeyId: string } | { ok: false; code: string; message: string };

const AuthPattern = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

export async function verifySigV4(
  req: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: string },
  expect: { region: string; service: string },
  keys: (accessKeyId: string) => SigV4Key | undefined,
  now = Date.now(),
): Promise<SigV4Result> {
  const h = (n: string) => {
    const v = req.headers[n];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const m = AuthPattern.exec(h('authorization') ?? '');
  if (!m) return { ok: false, code: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const [, akid, day, region, service, signedHeaders, signature] = m as unknown as string[];
  if (region !== expect.region || service !== expect.service) return { ok: false, code: 'InvalidSignatureException', message: `Credential should be scoped to a valid region/service: got ${region}/${service}, expected ${expect.region}/${expect.service}` };
  const key = keys(akid!);
  if (!key) return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
  if (h('x-amz-security-token') !== key.sessionToken) return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
  const amzDate = h('x-amz-date') ?? '';
  const t = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (!Number.isFinite(t) || amzDate.slice(0, 8) !== day) return { ok: false, code: 'IncompleteSignatureException', message: 'X-Amz-Date is missing or does not match the credential scope' };
  if (Math.abs(now - t) > 5 * 60_000) return { ok: false, code: 'InvalidSignatureException', message: 'Signature expired' };
  const names = signedHeaders!.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return { ok: false, code: 'IncompleteSignatureException', message: 'host and x-amz-date must be signed' };
  const headers: Record<string, string> = {};
  for (const n of names) headers[n] = h(n) ?? '';
  const [path, query] = req.path.split('?') as [string, string | undefined];
  const signer = new SignatureV4({ service: service!, region: region!, credentials: { accessKeyId: akid!, secretAccessKey: key.secretAccessKey, sessionToken: key.sessionToken }, sha256: Hash.bind(null, 'sha256'), applyChecksum: false });
  const signed = await signer.sign(
    {
      method: req.method,
      protocol: 'https:',
      hostname: (headers.host ?? '').split(':')[0]!,
      path,
      query: Object.fromEntries(new URLSearchParams(query ?? '')),
      headers,
      body: req.body,
    },
    { signingDate: new Date(t), unsignableHeaders: new Set(), signableHeaders: new Set(names) },
  );
  const want = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? signed.headers.Authorization ?? ''))?.[1];
  if (want !== signature) return { ok: false, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided.' };
  return { ok: true, accessKeyId: akid! };
}
