// GCP: an OAuth2 access token, used as the password of user "oauth2accesstoken" for gcr.io and
// Artifact Registry. Controller level: the metadata server (GKE Workload Identity serves the
// pod's identity there). Object level: the ServiceAccount token exchanged at Google STS, then
// (when iam.gke.io/gcp-service-account names one) an access token of that Google service account
// from IAM Credentials. Behaviour follows fluxcd/pkg auth/gcp, including its annotation
// gcp.auth.fluxcd.io/workload-identity-provider for clusters outside GKE.
import type { Credentials } from '../auth.ts';
import { CloudAuthError, excerpt, parseJson } from './http.ts';
import { hostname, type CloudProvider, type Expiring, type ProviderContext, type ServiceAccount } from './types.ts';

const Scopes = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/userinfo.email'];
const EmailAnnotation = 'iam.gke.io/gcp-service-account';
const EmailPattern = /^[a-zA-Z0-9-]{1,100}@[a-zA-Z0-9-]{1,100}\.iam\.gserviceaccount\.com$/;
const ProviderAnnotation = 'gcp.auth.fluxcd.io/workload-identity-provider';
const ProviderPattern = /^projects\/\d{1,30}\/locations\/global\/workloadIdentityPools\/[^/]{1,100}\/providers\/[^/]{1,100}$/;
const RegistryPattern = /^(((.+\.)?gcr\.io)|(.+-docker\.pkg\.dev))$/;

function metadataBase(ctx: ProviderContext): string {
  return `http://${ctx.env.GCE_METADATA_HOST || 'metadata.google.internal'}/computeMetadata/v1`;
}
// Google has no standard variables for these; ours point them at private endpoints (and tests).
function stsUrl(ctx: ProviderContext): string {
  return ctx.env.OCI_SOURCE_GCP_STS_URL || 'https://sts.googleapis.com/v1/token';
}
function iamCredentialsBase(ctx: ProviderContext): string {
  return ctx.env.OCI_SOURCE_GCP_IAM_CREDENTIALS_URL || 'https://iamcredentials.googleapis.com';
}

/** Google JSON errors: {error: "invalid_grant", error_description} or {error: {code, message, status}}. */
function googleError(text: string, status: number): string {
  const b = parseJson(text);
  const e = b?.error;
  if (typeof e === 'string') return `${e}: ${typeof b?.error_description === 'string' ? b.error_description : ''}`.trim();
  if (e && typeof e === 'object') {
    const o = e as { status?: string; message?: string; code?: number };
    return `${o.status ?? o.code ?? status}: ${o.message ?? ''}`;
  }
  return `HTTP ${status} ${excerpt(text)}`;
}

async function metadataGet(ctx: ProviderContext, step: string, path: string): Promise<{ status: number; text: string }> {
  return ctx.http.send(step, { method: 'GET', url: `${metadataBase(ctx)}/${path}`, headers: { 'metadata-flavor': 'Google' }, ...(ctx.signal ? { signal: ctx.signal } : {}) });
}

interface GkeCluster {
  project: string;
  location: string;
  cluster: string;
}

/** GKE cluster facts for the workload identity pool, read once (they never change for the pod). */
async function gkeCluster(ctx: ProviderContext): Promise<GkeCluster> {
  let p = ctx.memo.get('gke') as Promise<GkeCluster> | undefined;
  p ??= (async () => {
    const step = 'GKE cluster metadata';
    const read = async (path: string) => {
      const r = await metadataGet(ctx, step, path);
      if (r.status !== 200 || !r.text.trim()) throw new CloudAuthError(step, `${path} from the metadata server: HTTP ${r.status} ${excerpt(r.text)} (outside GKE, annotate the ServiceAccount with ${ProviderAnnotation})`);
      return r.text.trim();
    };
    return { project: await read('project/project-id'), location: await read('instance/attributes/cluster-location'), cluster: await read('instance/attributes/cluster-name') };
  })();
  ctx.memo.set('gke', p);
  try {
    return await p;
  } catch (err) {
    ctx.memo.delete('gke');
    throw err;
  }
}

function providerAudience(sa: ServiceAccount): string | undefined {
  const wip = sa.metadata.annotations?.[ProviderAnnotation];
  if (!wip) return undefined;
  if (!ProviderPattern.test(wip)) throw new CloudAuthError('workload identity', `ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}': invalid annotation ${ProviderAnnotation} '${wip}' (projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>)`);
  return `//iam.googleapis.com/${wip}`;
}

function emailOf(sa: ServiceAccount): string | undefined {
  const email = sa.metadata.annotations?.[EmailAnnotation];
  if (!email) return undefined;
  if (!EmailPattern.test(email)) throw new CloudAuthError('workload identity', `ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}': invalid annotation ${EmailAnnotation} '${email}' (<name>@<project>.iam.gserviceaccount.com)`);
  return email;
}

export const gcp: CloudProvider<string> = {
  name: 'gcp',

  registryScope(registry) {
    if (!RegistryPattern.test(hostname(registry))) {
      throw new CloudAuthError('provider gcp', `registry '${registry}' is not a Google registry (gcr.io, *.gcr.io or <location>-docker.pkg.dev); use provider: generic for other registries`);
    }
    // One access token serves every Google registry.
    return 'gcp';
  },

  accessScope: () => `scopes=${Scopes.join(',')}`,

  controllerIdentity: () => 'metadata-server',

  async controllerToken(ctx) {
    const step = 'GCP access token from the metadata server';
    const started = Date.now();
    const r = await metadataGet(ctx, step, `instance/service-accounts/default/token?scopes=${encodeURIComponent(Scopes.join(','))}`);
    const b = parseJson(r.text);
    if (r.status !== 200) throw new CloudAuthError(step, `HTTP ${r.status} ${excerpt(r.text)} (on GKE, enable Workload Identity on the node pool and bind the controller's ServiceAccount to a Google service account with roles/artifactregistry.reader)`);
    if (typeof b?.access_token !== 'string' || !Number.isFinite(Number(b.expires_in))) throw new CloudAuthError(step, 'response has no access_token/expires_in');
    return { value: b.access_token, expiresAt: started + Number(b.expires_in) * 1000 };
  },

  serviceAccountIdentity(sa) {
    // Direct federated access (no annotation) is an identity too: the ServiceAccount itself.
    return emailOf(sa) ?? `principal:${sa.metadata.namespace}/${sa.metadata.name}`;
  },

  async audience(ctx, sa) {
    const wip = providerAudience(sa);
    if (wip) return wip;
    return `${(await gkeCluster(ctx)).project}.svc.id.goog`;
  },

  async serviceAccountToken(ctx, oidcToken, sa) {
    let audience = providerAudience(sa);
    if (!audience) {
      const c = await gkeCluster(ctx);
      audience = `identitynamespace:${c.project}.svc.id.goog:https://container.googleapis.com/v1/projects/${c.project}/locations/${c.location}/clusters/${c.cluster}`;
    }
    const who = `ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}'`;
    const stsStep = `Google STS token exchange for ${who}`;
    const started = Date.now();
    const r = await ctx.http.send(stsStep, {
      method: 'POST',
      url: stsUrl(ctx),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        audience,
        scope: Scopes.join(' '),
        requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        subject_token: oidcToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }).toString(),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const b = parseJson(r.text);
    if (r.status !== 200) throw new CloudAuthError(stsStep, `${googleError(r.text, r.status)} (check the workload identity pool and provider for this cluster's issuer)`);
    if (typeof b?.access_token !== 'string' || !Number.isFinite(Number(b.expires_in))) throw new CloudAuthError(stsStep, 'response has no access_token/expires_in');
    const federated = { value: b.access_token, expiresAt: started + Number(b.expires_in) * 1000 };
    const email = emailOf(sa);
    if (!email) return federated;
    const iamStep = `IAM Credentials generateAccessToken for '${email}'`;
    const r2 = await ctx.http.send(iamStep, {
      method: 'POST',
      url: `${iamCredentialsBase(ctx)}/v1/projects/-/serviceAccounts/${encodeURIComponent(email)}:generateAccessToken`,
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${federated.value}` },
      body: JSON.stringify({ scope: Scopes, lifetime: '3600s' }),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const b2 = parseJson(r2.text);
    if (r2.status !== 200) throw new CloudAuthError(iamStep, `${googleError(r2.text, r2.status)} (grant roles/iam.workloadIdentityUser on '${email}' to ${who}, annotation ${EmailAnnotation})`);
    const expiresAt = Date.parse(String(b2?.expireTime ?? ''));
    if (typeof b2?.accessToken !== 'string' || !Number.isFinite(expiresAt)) throw new CloudAuthError(iamStep, 'response has no accessToken/expireTime');
    return { value: b2.accessToken, expiresAt };
  },

  async registryCredentials(_ctx, _registry, _scope, token): Promise<Expiring<Credentials>> {
    return { value: { username: 'oauth2accesstoken', password: token.value }, expiresAt: token.expiresAt };
  },
};
