// Azure: Entra ID token by federated client assertion (workload identity), exchanged at the ACR
// registry for a refresh token, used as the password of the fixed ACR user. Behaviour follows
// fluxcd/pkg auth/azure: registries *.azurecr.{io,cn,de,us}, scope by cloud, audience
// api://AzureADTokenExchange, identity from azure.workload.identity/{tenant,client}-id.
import type { Credentials } from '../auth.ts';
import { CloudAuthError, excerpt, jwtExpiry, parseJson } from './http.ts';
import { hostname, type CloudProvider, type Expiring, type ProviderContext, type ServiceAccount } from './types.ts';

export const AzureAudience = 'api://AzureADTokenExchange';
export const AcrUser = '00000000-0000-0000-0000-000000000000';
const ClientIdAnnotation = 'azure.workload.identity/client-id';
const TenantIdAnnotation = 'azure.workload.identity/tenant-id';
const RegistryPattern = /^.+\.(azurecr\.io|azurecr\.cn|azurecr\.de|azurecr\.us)$/;
const DefaultAuthority = 'https://login.microsoftonline.com/';
const Guid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

interface Identity {
  tenantId: string;
  clientId: string;
  /** Where the identity came from, for messages: the env vars or the ServiceAccount annotations. */
  source: string;
}

function scopeFor(registryHost: string): string {
  if (registryHost.endsWith('.azurecr.cn')) return 'https://containerregistry.azure.cn/.default';
  if (registryHost.endsWith('.azurecr.us')) return 'https://containerregistry.azure.us/.default';
  return 'https://containerregistry.azure.net/.default';
}

function controllerEnv(ctx: ProviderContext): Identity & { tokenFile: string; authority: string } {
  const e = ctx.env;
  const missing = ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE'].filter((k) => !e[k]);
  if (missing.length) {
    throw new CloudAuthError(
      'controller-level workload identity',
      `environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not set in the controller; label the controller pod azure.workload.identity/use: "true" and annotate its ServiceAccount with ${ClientIdAnnotation} so the Azure workload identity webhook injects them (then restart the pod), or use spec.serviceAccountName with --feature-gates=ObjectLevelWorkloadIdentity=true`,
    );
  }
  return { tenantId: e.AZURE_TENANT_ID!, clientId: e.AZURE_CLIENT_ID!, tokenFile: e.AZURE_FEDERATED_TOKEN_FILE!, authority: e.AZURE_AUTHORITY_HOST || DefaultAuthority, source: 'environment variables AZURE_CLIENT_ID/AZURE_TENANT_ID of the controller' };
}

function saIdentity(sa: ServiceAccount): Identity {
  const a = sa.metadata.annotations ?? {};
  const who = `ServiceAccount '${sa.metadata.namespace}/${sa.metadata.name}'`;
  const tenantId = a[TenantIdAnnotation];
  const clientId = a[ClientIdAnnotation];
  if (!clientId) throw new CloudAuthError('workload identity', `${who} has no annotation ${ClientIdAnnotation} (the client ID of the managed identity or app registration)`);
  if (!tenantId) throw new CloudAuthError('workload identity', `${who} has no annotation ${TenantIdAnnotation} (the Entra ID tenant of ${clientId})`);
  for (const [k, v] of [[ClientIdAnnotation, clientId], [TenantIdAnnotation, tenantId]] as const) {
    if (!Guid.test(v)) throw new CloudAuthError('workload identity', `${who}: annotation ${k} '${v}' is not a GUID`);
  }
  return { tenantId, clientId, source: `annotations ${ClientIdAnnotation}/${TenantIdAnnotation} of ${who}` };
}

/** Entra ID v2 token endpoint, client credentials with a federated client assertion. */
async function entraToken(ctx: ProviderContext, authority: string, id: Identity, assertion: string, scope: string): Promise<Expiring<string>> {
  const base = authority.endsWith('/') ? authority : `${authority}/`;
  const url = `${base}${encodeURIComponent(id.tenantId)}/oauth2/v2.0/token`;
  const step = `Entra ID token for client '${id.clientId}' in tenant '${id.tenantId}'`;
  const started = Date.now();
  const res = await ctx.http.send(step, {
    method: 'POST',
    url,
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      client_id: id.clientId,
      scope,
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }).toString(),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  const body = parseJson(res.text);
  if (res.status !== 200) {
    const code = typeof body?.error === 'string' ? body.error : `HTTP ${res.status}`;
    const desc = typeof body?.error_description === 'string' ? body.error_description.split(/\r?\n/)[0]! : excerpt(res.text);
    throw new CloudAuthError(step, `${code}: ${desc} (check ${id.source}, and that the identity has a federated credential for this ServiceAccount with audience ${AzureAudience})`);
  }
  const token = body?.access_token;
  const expiresIn = Number(body?.expires_in);
  if (typeof token !== 'string' || !token || !Number.isFinite(expiresIn)) throw new CloudAuthError(step, 'response has no access_token/expires_in');
  return { value: token, expiresAt: started + expiresIn * 1000 };
}

export interface AzureToken {
  accessToken: string;
  tenantId: string;
}

export const azure: CloudProvider<AzureToken> = {
  name: 'azure',

  registryScope(registry) {
    if (!RegistryPattern.test(hostname(registry))) {
      throw new CloudAuthError('provider azure', `registry '${registry}' is not an Azure Container Registry (host must match *.azurecr.io, *.azurecr.cn, *.azurecr.de or *.azurecr.us); use provider: generic for other registries`);
    }
    return registry;
  },

  accessScope: (registry) => scopeFor(hostname(registry)),

  controllerIdentity(ctx) {
    const id = controllerEnv(ctx);
    return `${id.tenantId}/${id.clientId}`;
  },

  async controllerToken(ctx, registry) {
    const env = controllerEnv(ctx);
    let assertion: string;
    try {
      // Re-read each time: kubelet rotates the projected token.
      assertion = (await ctx.readFile(env.tokenFile)).trim();
    } catch (err) {
      throw new CloudAuthError('controller-level workload identity', `cannot read AZURE_FEDERATED_TOKEN_FILE '${env.tokenFile}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const t = await entraToken(ctx, env.authority, env, assertion, scopeFor(hostname(registry)));
    return { value: { accessToken: t.value, tenantId: env.tenantId }, expiresAt: t.expiresAt };
  },

  serviceAccountIdentity(sa) {
    const id = saIdentity(sa);
    return `${id.tenantId}/${id.clientId}`;
  },

  audience: async () => AzureAudience,

  async serviceAccountToken(ctx, oidcToken, sa, _audience, registry) {
    const id = saIdentity(sa);
    const authority = ctx.env.AZURE_AUTHORITY_HOST || DefaultAuthority;
    const t = await entraToken(ctx, authority, id, oidcToken, scopeFor(hostname(registry)));
    return { value: { accessToken: t.value, tenantId: id.tenantId }, expiresAt: t.expiresAt };
  },

  async registryCredentials(ctx, registry, _scope, { value: token }): Promise<Expiring<Credentials>> {
    const host = hostname(registry);
    const step = `ACR token exchange at https://${registry}/oauth2/exchange`;
    const res = await ctx.http.send(step, {
      method: 'POST',
      url: `https://${registry}/oauth2/exchange`,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'access_token', service: host, tenant: token.tenantId, access_token: token.accessToken }).toString(),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const body = parseJson(res.text);
    if (res.status !== 200) {
      const errors = Array.isArray(body?.errors) ? (body.errors as { code?: string; message?: string }[]).map((e) => `${e.code ?? ''}: ${e.message ?? ''}`).join('; ') : excerpt(res.text);
      const hint = res.status === 401 || res.status === 403 ? ' (assign the AcrPull role on this registry to the identity)' : '';
      throw new CloudAuthError(step, `HTTP ${res.status}${errors ? ` ${errors}` : ''}${hint}`);
    }
    const refresh = body?.refresh_token;
    if (typeof refresh !== 'string' || !refresh) throw new CloudAuthError(step, 'response has no refresh_token');
    const exp = jwtExpiry(refresh);
    if (!exp) throw new CloudAuthError(step, 'the refresh token has no expiry');
    // Basic auth with the fixed user: the registry's own token endpoint (reached through the
    // normal challenge flow) accepts the refresh token as the password, as `az acr login` does.
    return { value: { username: AcrUser, password: refresh }, expiresAt: exp };
  },
};
