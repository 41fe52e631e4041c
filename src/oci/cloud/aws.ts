// AWS: credentials from IRSA (STS AssumeRoleWithWebIdentity with the projected token) or EKS Pod
// Identity (the node agent), then ECR GetAuthorizationToken signed with SigV4 (aws4) in the region
// of the registry host. Behaviour follows fluxcd/pkg auth/aws: the registry pattern of the ECR
// credential helper, audience sts.amazonaws.com, identity from eks.amazonaws.com/role-arn, STS
// and ECR in the registry's region, user/password from the base64 "AWS:<password>" token.
import aws4 from 'aws4';
import { XMLParser } from 'fast-xml-parser';
import type { Credentials } from '../auth.ts';
import { CloudAuthError, excerpt, parseJson } from './http.ts';
import { hostname, type CloudProvider, type Expiring, type ProviderContext, type ServiceAccount } from './types.ts';

export const AwsAudience = 'sts.amazonaws.com';
const RoleArnAnnotation = 'eks.amazonaws.com/role-arn';
const RoleArnPattern = /^arn:aws[\w-]*:iam::[0-9]{1,30}:role\/.{1,200}$/;
// From the ECR credential helper (as Flux uses it): public, China and isolated partitions.
const RegistryPattern = /^([0-9+]*)\.dkr[.-]ecr(?:-fips)?\.([^/.]*)\.(amazonaws\.com(?:\.cn)?|amazonaws\.eu|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov|on\.aws)$/;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

function dnsSuffix(region: string): string {
  return region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
}

function stsEndpoint(ctx: ProviderContext, region: string): string {
  return ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || `https://sts.${region}.${dnsSuffix(region)}`;
}

function ecrEndpoint(ctx: ProviderContext, region: string): string {
  return ctx.env.AWS_ENDPOINT_URL_ECR || ctx.env.AWS_ENDPOINT_URL || `https://api.ecr.${region}.${dnsSuffix(region)}`;
}

const xml = new XMLParser({ ignoreAttributes: true, parseTagValue: false });

/** STS answers in XML (the awsQuery protocol): credentials, or <Error><Code>/<Message>. */
async function assumeRoleWithWebIdentity(ctx: ProviderContext, region: string, roleArn: string, sessionName: string, token: string, source: string): Promise<Expiring<AwsCredentials>> {
  const endpoint = stsEndpoint(ctx, region);
  const step = `STS AssumeRoleWithWebIdentity for role '${roleArn}'`;
  const res = await ctx.http.send(step, {
    method: 'POST',
    url: endpoint.endsWith('/') ? endpoint : `${endpoint}/`,
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: 'text/xml' },
    body: new URLSearchParams({ Action: 'AssumeRoleWithWebIdentity', Version: '2011-06-15', RoleArn: roleArn, RoleSessionName: sessionName, WebIdentityToken: token, DurationSeconds: '3600' }).toString(),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  let doc: Record<string, any> = {};
  try {
    doc = xml.parse(res.text) as Record<string, any>;
  } catch {
    // reported below with the raw excerpt
  }
  if (res.status !== 200) {
    const err = doc.ErrorResponse?.Error;
    const what = err?.Code ? `${err.Code}: ${err.Message ?? ''}` : `HTTP ${res.status} ${excerpt(res.text)}`;
    throw new CloudAuthError(step, `${what} (check ${source}, and that the role's trust policy allows this ServiceAccount through the cluster's OIDC provider with audience ${AwsAudience})`);
  }
  const c = doc.AssumeRoleWithWebIdentityResponse?.AssumeRoleWithWebIdentityResult?.Credentials;
  const expiresAt = Date.parse(c?.Expiration ?? '');
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !Number.isFinite(expiresAt)) throw new CloudAuthError(step, 'response has no Credentials');
  return { value: { accessKeyId: String(c.AccessKeyId), secretAccessKey: String(c.SecretAccessKey), sessionToken: String(c.SessionToken) }, expiresAt };
}

/** EKS Pod Identity: the node agent hands out the role's credentials for our projected token. */
async function podIdentity(ctx: ProviderContext): Promise<Expiring<AwsCredentials>> {
  const uri = ctx.env.AWS_CONTAINER_CREDENTIALS_FULL_URI!;
  const step = `EKS Pod Identity credentials from ${uri}`;
  let authz = ctx.env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? '';
  const file = ctx.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  if (file) {
    try {
      authz = (await ctx.readFile(file)).trim();
    } catch (err) {
      throw new CloudAuthError(step, `cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const res = await ctx.http.send(step, { method: 'GET', url: uri, headers: { ...(authz ? { authorization: authz } : {}), accept: 'application/json' }, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  const body = parseJson(res.text);
  if (res.status !== 200) {
    const what = typeof body?.code === 'string' || typeof body?.Code === 'string' ? `${String(body.code ?? body.Code)}: ${String(body.message ?? body.Message ?? '')}` : `HTTP ${res.status} ${excerpt(res.text)}`;
    throw new CloudAuthError(step, `${what} (check the pod identity association of the controller's ServiceAccount)`);
  }
  const expiresAt = Date.parse(String(body?.Expiration ?? ''));
  if (typeof body?.AccessKeyId !== 'string' || typeof body.SecretAccessKey !== 'string' || typeof body.Token !== 'string' || !Number.isFinite(expiresAt)) throw new CloudAuthError(step, 'response has no AccessKeyId/SecretAccessKey/Token/Expiration');
  return { value: { accessKeyId: body.AccessKeyId, secretAccessKey: body.SecretAccessKey, sessionToken: body.Token }, expiresAt };
}

function roleArnOf(sa: ServiceAccount): string {
  const arn = sa.metadata.annotations?.[RoleArnAnnotation] ?? '';
  if (!RoleArnPattern.test(arn)) {
    throw new CloudAuthError('workload identity', `ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}' ${arn ? `has an invalid annotation ${RoleArnAnnotation} '${arn}'` : `has no annotation ${RoleArnAnnotation}`} (the ARN of the IAM role to assume, arn:aws:iam::<account>:role/<name>)`);
  }
  return arn;
}

export const aws: CloudProvider<AwsCredentials> = {
  name: 'aws',

  registryScope(registry) {
    const m = RegistryPattern.exec(hostname(registry));
    if (!m?.[2]) {
      throw new CloudAuthError('provider aws', `registry '${registry}' is not an ECR registry (<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]); use provider: generic for other registries`);
    }
    return m[2];
  },

  accessScope: (region) => `region=${region}`,

  controllerIdentity(ctx) {
    const e = ctx.env;
    if (e.AWS_ROLE_ARN && e.AWS_WEB_IDENTITY_TOKEN_FILE) return `irsa:${e.AWS_ROLE_ARN}`;
    if (e.AWS_CONTAINER_CREDENTIALS_FULL_URI) return `pod-identity:${e.AWS_CONTAINER_CREDENTIALS_FULL_URI}`;
    throw new CloudAuthError(
      'controller-level workload identity',
      'neither IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) nor EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI) is set in the controller; annotate its ServiceAccount with eks.amazonaws.com/role-arn (IRSA) or create a pod identity association for it, then restart the pod; or use spec.serviceAccountName with --feature-gates=ObjectLevelWorkloadIdentity=true',
    );
  },

  async controllerToken(ctx, region) {
    const e = ctx.env;
    if (e.AWS_ROLE_ARN && e.AWS_WEB_IDENTITY_TOKEN_FILE) {
      let token: string;
      try {
        token = (await ctx.readFile(e.AWS_WEB_IDENTITY_TOKEN_FILE)).trim();
      } catch (err) {
        throw new CloudAuthError('controller-level workload identity', `cannot read AWS_WEB_IDENTITY_TOKEN_FILE '${e.AWS_WEB_IDENTITY_TOKEN_FILE}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const session = e.AWS_ROLE_SESSION_NAME || `oci-source-controller-${Date.now()}`;
      return assumeRoleWithWebIdentity(ctx, region, e.AWS_ROLE_ARN, session, token, 'environment variable AWS_ROLE_ARN of the controller');
    }
    aws.controllerIdentity(ctx); // throws the "nothing configured" error
    return podIdentity(ctx);
  },

  serviceAccountIdentity: (sa) => roleArnOf(sa),

  audience: async () => AwsAudience,

  async serviceAccountToken(ctx, oidcToken, sa, _audience, region) {
    const arn = roleArnOf(sa);
    // Session names are limited to 64 characters of [\w+=,.@-].
    const session = `${sa.metadata.name}.${sa.metadata.namespace}.${region}.ocisource.dev`.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
    return assumeRoleWithWebIdentity(ctx, region, arn, session, oidcToken, `annotation ${RoleArnAnnotation} of ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}'`);
  },

  async registryCredentials(ctx, _registry, scope, { value: creds }): Promise<Expiring<Credentials>> {
    const region = scope;
    const endpoint = new URL(ecrEndpoint(ctx, region));
    const step = `ECR GetAuthorizationToken in ${region}`;
    const body = '{}';
    const signed = aws4.sign(
      {
        host: endpoint.host,
        path: endpoint.pathname || '/',
        method: 'POST',
        service: 'ecr',
        region,
        body,
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' },
      },
      creds,
    );
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers ?? {})) if (v !== undefined && k.toLowerCase() !== 'host' && k.toLowerCase() !== 'content-length') headers[k.toLowerCase()] = String(v);
    const res = await ctx.http.send(step, { method: 'POST', url: endpoint.toString(), headers, body, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const json = parseJson(res.text);
    if (res.status !== 200) {
      const type = String(json?.__type ?? res.headers['x-amzn-errortype'] ?? `HTTP ${res.status}`).split(/[#:]/).filter(Boolean).pop();
      const msg = String(json?.message ?? json?.Message ?? excerpt(res.text));
      const hint = type === 'AccessDeniedException' ? ' (grant ecr:GetAuthorizationToken, e.g. the AmazonEC2ContainerRegistryReadOnly policy, to the role)' : '';
      throw new CloudAuthError(step, `${type}: ${msg}${hint}`);
    }
    const data = (json?.authorizationData as { authorizationToken?: string; expiresAt?: number | string }[] | undefined)?.[0];
    const decoded = data?.authorizationToken ? Buffer.from(data.authorizationToken, 'base64').toString('utf8') : '';
    const i = decoded.indexOf(':');
    const expiresAt = typeof data?.expiresAt === 'number' ? data.expiresAt * 1000 : Date.parse(String(data?.expiresAt ?? ''));
    if (i <= 0 || !Number.isFinite(expiresAt)) throw new CloudAuthError(step, 'response has no usable authorizationData (expected base64 "AWS:<password>" and expiresAt)');
    return { value: { username: decoded.slice(0, i), password: decoded.slice(i + 1) }, expiresAt };
  },
};
