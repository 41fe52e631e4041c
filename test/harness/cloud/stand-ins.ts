// Stand-ins for the cloud services the tests cannot reach, each checking what the real one checks:
//   HTTPS (one port, routed by Host): Entra ID (login.microsoftonline.com), ACR (myacr.azurecr.io:
//   /oauth2/exchange and /oauth2/token in front of a real docker-registry with token auth), AWS STS
//   (sts.us-west-2.amazonaws.com), the ECR API (api.ecr.us-west-2.amazonaws.com, SigV4-verified),
//   the ECR registry (Basic auth in front of a real docker-registry), Google STS
//   (sts.googleapis.com), IAM Credentials (iamcredentials.googleapis.com) and Artifact Registry
//   (europe-west1-docker.pkg.dev: /v2/token in front of a real docker-registry with token auth);
//   plain HTTP, as the real ones: the GCE metadata server and the EKS Pod Identity agent.
// Kubernetes tokens are checked against the test apiserver's service-account key: signature,
// issuer, audience, subject and expiry. Every service counts the requests it answered.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createCA, createServerCert, type CA } from '../pki.ts';
import { LOOPBACK } from '../ports.ts';
import { onExit } from '../proc.ts';
import { startRegistry, type Registry, type RegistryEndpoint } from '../registry.ts';
import { parseScope, signJwt } from '../token-issuer.ts';
import { checkJwt, decodeJwt } from './jwt.ts';
import { verifySigV4 } from './sigv4.ts';

export const Hosts = {
  entra: 'login.microsoftonline.com',
  acr: 'myacr.azurecr.io',
  sts: 'sts.us-west-2.amazonaws.com',
  ecrApi: 'api.ecr.us-west-2.amazonaws.com',
  ecr: '123456789012.dkr.ecr.us-west-2.amazonaws.com',
  googleSts: 'sts.googleapis.com',
  iamCredentials: 'iamcredentials.googleapis.com',
  gar: 'europe-west1-docker.pkg.dev',
} as const;
export type Service = keyof typeof Hosts | 'metadata' | 'podIdentity';

export const KubeIssuer = 'https://kubernetes.default.svc.cluster.local';
export const GcpProject = 'osc-test-project';
export const GkeCluster = { location: 'europe-west1', name: 'osc-test-cluster' };
export const GkePool = `${GcpProject}.svc.id.goog`;
export const GkeProvider = `https://container.googleapis.com/v1/projects/${GcpProject}/locations/${GkeCluster.location}/clusters/${GkeCluster.name}`;
const AcrScope = 'https://containerregistry.azure.net/.default';
const GoogleScope = 'https://www.googleapis.com/auth/cloud-platform';

/** An Entra app / managed identity with federated credentials and AcrPull on ACR (or not). */
export interface AzureIdentity {
  tenantId: string;
  clientId: string;
  /** Federated credentials: subject `system:serviceaccount:<ns>:<sa>`, audience api://AzureADTokenExchange. */
  subjects: string[];
  acrPull: boolean;
}

/** An IAM role: which ServiceAccounts may assume it (IRSA trust / pod identity association). */
export interface AwsRole {
  arn: string;
  subjects: string[];
  ecrPull: boolean;
}

export interface CloudConfig {
  azure: AzureIdentity[];
  aws: AwsRole[];
  /** Google service accounts: e-mail → KSA subjects with roles/iam.workloadIdentityUser; reader on AR. */
  gcp: { email: string; subjects: string[]; reader: boolean }[];
  /** The GSA the metadata server serves the controller as (GKE Workload Identity binding). */
  gcpMetadataAccount?: string;
  /** Lifetimes in seconds, changeable while running (token expiry tests). */
  lifetimes: { entra: number; acrRefresh: number; sts: number; ecr: number; google: number };
}

export interface CloudStandIns {
  /** https://<host>:<port> for a service. */
  url(s: keyof typeof Hosts): string;
  port: number;
  /** host:port of the metadata server / pod identity agent (plain HTTP). */
  metadataHost: string;
  podIdentityUrl: string;
  ca: CA;
  config: CloudConfig;
  /** Requests answered per service (successful or not); for registries, their auth endpoints only. */
  counts: Record<Service, number>;
  /** Every secret value handed out (tokens, keys, passwords), to prove none leaks. */
  secrets(): string[];
  /** Successful token issuances per service. */
  issued: Record<Service, number>;
  resetCounts(): void;
  /** Registry endpoints for pushing test content (bypassing the cloud auth, as an admin would). */
  push: { acr: RegistryEndpoint; ecr: RegistryEndpoint; gar: RegistryEndpoint };
  stop(): Promise<void>;
}

interface Issued {
  principal: string;
  expiresAt: number;
  scope?: string;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/xml' : 'application/json', ...headers });
  res.end(text);
}

function basic(req: http.IncomingMessage): { user: string; pass: string } | undefined {
  const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const d = Buffer.from(m[1]!, 'base64').toString();
  const i = d.indexOf(':');
  return i < 0 ? undefined : { user: d.slice(0, i), pass: d.slice(i + 1) };
}

/** Forwards a request to a docker-registry on loopback, keeping the Host header (Location URLs). */
function proxy(req: http.IncomingMessage, res: http.ServerResponse, port: number): void {
  const up = http.request({ host: LOOPBACK, port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', () => send(res, 502, { errors: [{ code: 'UNAVAILABLE', message: 'registry backend unavailable' }] }));
  req.pipe(up);
}

const sub = (ns: string, sa: string) => `system:serviceaccount:${ns}:${sa}`;
export { sub as serviceAccountSubject };

/**
 * Starts the stand-ins and three docker-registries. `saPublicKeyFile` is the apiserver's
 * --service-account-key-file (cluster.dir/pki/sa.pub).
 */
export async function startCloudStandIns(opts: { dir: string; saPublicKeyFile: string; config: CloudConfig }): Promise<CloudStandIns> {
  const config = opts.config;
  const saKey = createPublicKey(readFileSync(opts.saPublicKeyFile));
  const ca = await createCA(path.join(opts.dir, 'cloud-pki'), { cn: 'osc-test-cloud-ca' });
  const cert = await createServerCert(ca, { dir: path.join(opts.dir, 'cloud-pki'), name: 'cloud', sans: ['IP:127.0.0.1', ...Object.values(Hosts).map((h) => `DNS:${h}`)] });
  // The stand-ins' own signing key (Entra access tokens, ACR refresh tokens).
  const own = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // Registry token signer (x5c in the JWT header; the registries' rootcertbundle).
  const regSigner = await createCA(path.join(opts.dir, 'cloud-registry-signer'), { cn: 'osc-test-cloud-registry-signer' });
  const regSignKey = createPrivateKey(regSigner.keyPem);
  const x5c = [regSigner.certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')];
  const pusher = { username: 'pusher', password: randomBytes(12).toString('hex') };

  const services: Service[] = [...(Object.keys(Hosts) as (keyof typeof Hosts)[]), 'metadata', 'podIdentity'];
  const counts = Object.fromEntries(services.map((s) => [s, 0])) as Record<Service, number>;
  const issued = Object.fromEntries(services.map((s) => [s, 0])) as Record<Service, number>;
  const awsKeys = new Map<string, { secretAccessKey: string; sessionToken: string; role: AwsRole; expiresAt: number }>();
  const ecrPasswords = new Map<string, number>();
  const googleTokens = new Map<string, Issued>();
  const now = () => Date.now();
  const handedOut: string[] = [];
  const remember = <T extends string>(v: T): T => {
    handedOut.push(v);
    return v;
  };

  const ownToken = (claims: Record<string, unknown>, lifetime: number) => remember(signJwt(own.privateKey, { typ: 'JWT', alg: 'ES256' }, { ...claims, iat: Math.floor(now() / 1000), nbf: Math.floor(now() / 1000) - 60, exp: Math.floor(now() / 1000) + lifetime, jti: randomUUID() }));
  const registryToken = (service: string, account: string, scopes: string[], allowPush: boolean) => {
    const access = scopes.map(parseScope).filter((s) => !!s).map((s) => ({ ...s!, actions: s!.actions.filter((a) => a === 'pull' || (allowPush && a === 'push')) }));
    const t = Math.floor(now() / 1000);
    const token = remember(signJwt(regSignKey, { typ: 'JWT', alg: 'ES256', x5c }, { iss: 'osc-test-cloud', sub: account, aud: service, exp: t + 300, nbf: t - 60, iat: t, jti: randomUUID(), access }));
    return { token, access_token: token, expires_in: 300 };
  };

  // ---- Entra ID ------------------------------------------------------------------------------
  async function entra(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    const m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(u.pathname);
    if (req.method !== 'POST' || !m) return send(res, 404, { error: 'not_found' });
    const tenant = decodeURIComponent(m[1]!);
    const f = new URLSearchParams(await readBody(req));
    const fail = (error: string, code: number, desc: string) => send(res, code === 700016 ? 400 : 401, { error, error_description: `AADSTS${code}: ${desc} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`, error_codes: [code] });
    if (f.get('grant_type') !== 'client_credentials' || f.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return fail('invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
    const clientId = f.get('client_id') ?? '';
    const app = config.azure.find((a) => a.clientId === clientId && a.tenantId === tenant);
    if (!app) return fail('unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`);
    if (f.get('scope') !== AcrScope) return fail('invalid_scope', 70011, `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${f.get('scope')} is not valid.`);
    const assertion = f.get('client_assertion') ?? '';
    const chk = checkJwt(assertion, saKey, { issuer: KubeIssuer, audience: 'api://AzureADTokenExchange' });
    const c = chk.claims ?? decodeJwt(assertion)?.claims ?? {};
    if (!chk.ok && chk.why === 'signature') return fail('invalid_client', 700027, 'Client assertion failed signature validation.');
    if (!chk.ok && chk.why === 'expired') return fail('invalid_client', 700024, 'Client assertion is not within its valid time range.');
    if (!chk.ok || !app.subjects.includes(String(c.sub))) {
      return fail('invalid_client', 70021, `No matching federated identity record found for presented assertion. Assertion Issuer: '${c.iss}'. Assertion Subject: '${c.sub}'. Assertion Audience: '${Array.isArray(c.aud) ? c.aud.join(',') : c.aud}'.`);
    }
    issued.entra++;
    const lifetime = config.lifetimes.entra;
    send(res, 200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: ownToken({ aud: 'https://containerregistry.azure.net', iss: `https://sts.windows.net/${tenant}/`, tid: tenant, oid: clientId, appid: clientId }, lifetime) });
  }

  // ---- ACR -----------------------------------------------------------------------------------
  async function acr(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    const unauthorized = (message: string) => send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message }] });
    if (u.pathname.startsWith('/oauth2/')) counts.acr++;
    if (u.pathname === '/oauth2/exchange') {
      if (req.method !== 'POST') return send(res, 405, {});
      const f = new URLSearchParams(await readBody(req));
      if (f.get('grant_type') !== 'access_token') return unauthorized('unsupported grant_type');
      if (f.get('service') !== Hosts.acr) return unauthorized(`invalid service ${f.get('service')}`);
      const chk = checkJwt(f.get('access_token') ?? '', own.publicKey, { audience: 'https://containerregistry.azure.net' });
      if (!chk.ok) return unauthorized(`invalid access token: ${chk.why}`);
      const app = config.azure.find((a) => a.clientId === chk.claims.oid);
      if (!app?.acrPull) return unauthorized(`identity '${String(chk.claims.oid)}' has no role assignment on ${Hosts.acr}`);
      issued.acr++;
      return send(res, 200, { refresh_token: ownToken({ aud: Hosts.acr, sub: app.clientId, grant_type: 'refresh_token', tenant: chk.claims.tid }, config.lifetimes.acrRefresh) });
    }
    if (u.pathname === '/oauth2/token') {
      const b = basic(req);
      const scopes = u.searchParams.getAll('scope');
      if (u.searchParams.get('service') !== Hosts.acr) return unauthorized('invalid service');
      if (b?.user === pusher.username && b.pass === pusher.password) return send(res, 200, registryToken(Hosts.acr, 'pusher', scopes, true));
      if (b?.user !== '00000000-0000-0000-0000-000000000000') return unauthorized('authentication required');
      const chk = checkJwt(b.pass, own.publicKey, { audience: Hosts.acr });
      if (!chk.ok) return unauthorized(`invalid refresh token: ${chk.why}`);
      return send(res, 200, registryToken(Hosts.acr, String(chk.claims.sub), scopes, false));
    }
    return proxy(req, res, backends.acr);
  }

  // ---- AWS STS, Pod Identity, ECR -------------------------------------------------------------
  const awsCredentials = (role: AwsRole) => {
    const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const v = { secretAccessKey: remember(randomBytes(30).toString('base64')), sessionToken: remember(randomBytes(90).toString('base64')), role, expiresAt: now() + config.lifetimes.sts * 1000 };
    awsKeys.set(accessKeyId, v);
    return { accessKeyId, ...v };
  };
  const stsError = (res: http.ServerResponse, status: number, code: string, message: string) =>
    send(res, status, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message.replace(/</g, '&lt;')}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);

  async function sts(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const f = new URLSearchParams(req.method === 'POST' ? await readBody(req) : '');
    if (f.get('Action') !== 'AssumeRoleWithWebIdentity' || f.get('Version') !== '2011-06-15') return stsError(res, 400, 'InvalidAction', `Could not find operation ${f.get('Action')} for version ${f.get('Version')}`);
    const session = f.get('RoleSessionName') ?? '';
    if (!/^[\w+=,.@-]{2,64}$/.test(session)) return stsError(res, 400, 'ValidationError', `1 validation error detected: Value '${session}' at 'roleSessionName' failed to satisfy constraint`);
    const chk = checkJwt(f.get('WebIdentityToken') ?? '', saKey, { issuer: KubeIssuer, audience: 'sts.amazonaws.com' });
    if (!chk.ok) {
      if (chk.why === 'expired') return stsError(res, 400, 'ExpiredTokenException', 'Token expired: current date/time must be before the expiration date/time');
      if (chk.why === 'audience') return stsError(res, 400, 'InvalidIdentityToken', 'Incorrect token audience');
      return stsError(res, 400, 'InvalidIdentityToken', `Couldn't verify the token (${chk.why})`);
    }
    const role = config.aws.find((r) => r.arn === f.get('RoleArn'));
    if (!role || !role.subjects.includes(String(chk.claims.sub))) return stsError(res, 403, 'AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity');
    issued.sts++;
    const c = awsCredentials(role);
    send(res, 200, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>${chk.claims.sub}</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><AssumedRoleUser><Arn>${role.arn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${session}</Arn><AssumedRoleId>AROA:${session}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>${c.accessKeyId}</AccessKeyId><SecretAccessKey>${c.secretAccessKey}</SecretAccessKey><SessionToken>${c.sessionToken}</SessionToken><Expiration>${new Date(c.expiresAt).toISOString()}</Expiration></Credentials><Provider>${KubeIssuer}</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`);
  }

  async function podIdentity(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    if (u.pathname !== '/v1/credentials') return send(res, 404, { code: 'NotFound', message: 'not found' });
    const chk = checkJwt(req.headers.authorization ?? '', saKey, { issuer: KubeIssuer, audience: 'pods.eks.amazonaws.com' });
    if (!chk.ok) return send(res, 400, { code: 'InvalidTokenException', message: `Service account token cannot be validated: ${chk.why}` });
    const role = config.aws.find((r) => r.subjects.includes(String(chk.claims.sub)));
    if (!role) return send(res, 400, { code: 'AccessDeniedException', message: `No pod identity association for ${chk.claims.sub}` });
    issued.podIdentity++;
    const c = awsCredentials(role);
    send(res, 200, { AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, Token: c.sessionToken, AccountId: '123456789012', Expiration: new Date(c.expiresAt).toISOString() });
  }

  async function ecrApi(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    const body = await readBody(req);
    const err = (status: number, type: string, message: string) => send(res, status, { __type: type, message }, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': `${type}:` });
    const v = await verifySigV4({ method: req.method ?? '', path: u.pathname + u.search, headers: req.headers, body }, { region: 'us-west-2', service: 'ecr' }, (id) => {
      const k = awsKeys.get(id);
      return k && k.expiresAt > now() ? k : undefined;
    });
    if (!v.ok) return err(v.code === 'MissingAuthenticationTokenException' ? 403 : 400, v.code, v.message);
    if (req.headers['x-amz-target'] !== 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken') return err(400, 'UnknownOperationException', 'unknown operation');
    const role = awsKeys.get(v.accessKeyId)!.role;
    if (!role.ecrPull) return err(400, 'AccessDeniedException', `User: ${role.arn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/session is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action`);
    issued.ecrApi++;
    const password = remember(randomBytes(24).toString('base64'));
    const expiresAt = now() + config.lifetimes.ecr * 1000;
    ecrPasswords.set(password, expiresAt);
    send(res, 200, { authorizationData: [{ authorizationToken: Buffer.from(`AWS:${password}`).toString('base64'), expiresAt: expiresAt / 1000, proxyEndpoint: `https://${Hosts.ecr}` }] }, { 'content-type': 'application/x-amz-json-1.1' });
  }

  function ecr(req: http.IncomingMessage, res: http.ServerResponse): void {
    const b = basic(req);
    const exp = b?.user === 'AWS' ? ecrPasswords.get(b.pass) : undefined;
    if (!exp || exp <= now()) {
      req.resume();
      return send(res, 401, { errors: [{ code: 'DENIED', message: 'Your authorization token has expired. Reauthenticate and try again.' }] }, { 'www-authenticate': `Basic realm="https://${req.headers.host}/",service="ecr.amazonaws.com"`, 'docker-distribution-api-version': 'registry/2.0' });
    }
    proxy(req, res, backends.ecr);
  }

  // ---- Google --------------------------------------------------------------------------------
  const googleToken = (principal: string, scope: string, lifetime: number) => {
    const token = remember(`ya29.${randomBytes(48).toString('base64url')}`);
    googleTokens.set(token, { principal, scope, expiresAt: now() + lifetime * 1000 });
    return token;
  };

  function metadata(req: http.IncomingMessage, res: http.ServerResponse, u: URL): void {
    if (req.headers['metadata-flavor'] !== 'Google') return send(res, 403, 'Missing required header "Metadata-Flavor": "Google"', { 'content-type': 'text/html' });
    const p = u.pathname.replace(/^\/computeMetadata\/v1\//, '');
    const text = (t: string) => {
      res.writeHead(200, { 'content-type': 'application/text', 'metadata-flavor': 'Google' });
      res.end(t);
    };
    if (p === 'project/project-id') return text(GcpProject);
    if (p === 'instance/attributes/cluster-location') return text(GkeCluster.location);
    if (p === 'instance/attributes/cluster-name') return text(GkeCluster.name);
    if (p === 'instance/service-accounts/default/token') {
      const email = config.gcpMetadataAccount;
      if (!email) return send(res, 404, 'Your Kubernetes service account is not annotated with a target Google service account, which is a requirement for using Workload Identity.', { 'content-type': 'text/plain' });
      const scopes = (u.searchParams.get('scopes') ?? GoogleScope).split(',');
      if (!scopes.includes(GoogleScope)) return send(res, 400, `scopes must include ${GoogleScope}`, { 'content-type': 'text/plain' });
      issued.metadata++;
      return send(res, 200, { access_token: googleToken(email, scopes.join(' '), config.lifetimes.google), expires_in: config.lifetimes.google, token_type: 'Bearer' });
    }
    send(res, 404, 'not found', { 'content-type': 'text/plain' });
  }

  async function googleSts(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    if (req.method !== 'POST' || u.pathname !== '/v1/token') return send(res, 404, { error: 'not_found' });
    const f = new URLSearchParams(await readBody(req));
    const bad = (desc: string) => send(res, 400, { error: 'invalid_grant', error_description: desc });
    if (f.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange' || f.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:jwt') return send(res, 400, { error: 'invalid_request', error_description: 'Invalid grant_type or subject_token_type.' });
    const wantAudience = `identitynamespace:${GkePool}:${GkeProvider}`;
    if (f.get('audience') !== wantAudience) return bad(`The audience ${f.get('audience')} is not a valid workload identity pool provider.`);
    if (!(f.get('scope') ?? '').split(' ').includes(GoogleScope)) return send(res, 400, { error: 'invalid_scope', error_description: 'scope must include cloud-platform' });
    const chk = checkJwt(f.get('subject_token') ?? '', saKey, { issuer: KubeIssuer, audience: GkePool });
    if (!chk.ok) {
      const c = chk.claims;
      return bad(chk.why === 'audience' ? `The audience in ID Token [${Array.isArray(c?.aud) ? c.aud.join(',') : c?.aud}] does not match the expected audience ${GkePool}.` : chk.why === 'expired' ? 'ID Token issued at ... is expired.' : `Invalid ID Token (${chk.why}).`);
    }
    issued.googleSts++;
    send(res, 200, { access_token: googleToken(`principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/${GkePool}/subject/${chk.claims.sub}`, GoogleScope, config.lifetimes.google), issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: config.lifetimes.google });
  }

  async function iamCredentials(req: http.IncomingMessage, res: http.ServerResponse, u: URL): Promise<void> {
    const m = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(u.pathname);
    const body = await readBody(req);
    if (req.method !== 'POST' || !m) return send(res, 404, { error: { code: 404, message: 'not found', status: 'NOT_FOUND' } });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const caller = googleTokens.get(bearer);
    if (!caller || caller.expiresAt <= now()) return send(res, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
    const email = decodeURIComponent(m[1]!);
    const gsa = config.gcp.find((g) => g.email === email);
    const subject = caller.principal.split('/subject/')[1];
    if (!gsa || !subject || !gsa.subjects.includes(subject)) return send(res, 403, { error: { code: 403, message: "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", status: 'PERMISSION_DENIED' } });
    const scope = (JSON.parse(body || '{}') as { scope?: string[] }).scope ?? [];
    if (!scope.includes(GoogleScope)) return send(res, 400, { error: { code: 400, message: 'scope must include cloud-platform', status: 'INVALID_ARGUMENT' } });
    issued.iamCredentials++;
    send(res, 200, { accessToken: googleToken(email, scope.join(' '), config.lifetimes.google), expireTime: new Date(now() + config.lifetimes.google * 1000).toISOString() });
  }

  function gar(req: http.IncomingMessage, res: http.ServerResponse, u: URL): void {
    if (u.pathname !== '/v2/token') return proxy(req, res, backends.gar);
    counts.gar++;
    const b = basic(req);
    const scopes = u.searchParams.getAll('scope');
    const denied = (status: number, message: string) => send(res, status, { errors: [{ code: status === 401 ? 'UNAUTHORIZED' : 'DENIED', message }] });
    if (b?.user === pusher.username && b.pass === pusher.password) return send(res, 200, registryToken(Hosts.gar, 'pusher', scopes, true));
    if (b?.user !== 'oauth2accesstoken') return denied(401, 'authentication required');
    const t = googleTokens.get(b.pass);
    if (!t || t.expiresAt <= now()) return denied(401, 'invalid or expired access token');
    if (!t.scope?.split(' ').includes(GoogleScope)) return denied(403, 'access token lacks the cloud-platform scope');
    const reader = t.principal.includes('@') ? config.gcp.find((g) => g.email === t.principal)?.reader : config.gcp.some((g) => g.reader && g.subjects.some((s) => t.principal.endsWith(`/subject/${s}`)));
    if (!reader) return denied(403, `Permission "artifactregistry.repositories.downloadArtifacts" denied on resource for ${t.principal}`);
    send(res, 200, registryToken(Hosts.gar, t.principal, scopes, false));
  }

  // ---- servers -------------------------------------------------------------------------------
  const routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, u: URL) => void | Promise<void>> = {
    [Hosts.entra]: entra,
    [Hosts.acr]: acr,
    [Hosts.sts]: sts,
    [Hosts.ecrApi]: ecrApi,
    [Hosts.ecr]: ecr,
    [Hosts.googleSts]: googleSts,
    [Hosts.iamCredentials]: iamCredentials,
    [Hosts.gar]: gar,
  };
  const byHost = Object.fromEntries(Object.entries(Hosts).map(([k, v]) => [v, k as Service]));
  const backends = { acr: 0, ecr: 0, gar: 0 };
  const handle = (route: (req: http.IncomingMessage, res: http.ServerResponse, u: URL) => void | Promise<void>, service: Service) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (service !== 'acr' && service !== 'gar' && service !== 'ecr') counts[service]++;
    const u = new URL(req.url ?? '/', 'http://x');
    Promise.resolve(route(req, res, u)).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: 'internal', message: String(err) });
    });
  };
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const host = (req.headers.host ?? '').split(':')[0]!.toLowerCase();
    const route = routes[host];
    if (!route) return send(res, 421, { error: `no stand-in for host ${host}` });
    handle(route, byHost[host]!)(req, res);
  });
  const plain = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname.startsWith('/computeMetadata/')) return handle(metadata, 'metadata')(req, res);
    handle(podIdentity, 'podIdentity')(req, res);
  });
  const listen = (s: http.Server) => new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => resolve((s.address() as AddressInfo).port));
  });
  const port = await listen(server);
  const plainPort = await listen(plain);
  const unregister = onExit(() => {
    server.close();
    plain.close();
  });

  const registries: Registry[] = [];
  const tokenRegistry = async (host: string, realmPath: string): Promise<Registry> =>
    startRegistry({ extraConfig: { auth: { token: { realm: `https://${host}:${port}${realmPath}`, service: host, issuer: 'osc-test-cloud', rootcertbundle: regSigner.certFile } } } });
  try {
    const started = await Promise.allSettled([tokenRegistry(Hosts.acr, '/oauth2/token'), tokenRegistry(Hosts.gar, '/v2/token'), startRegistry()]);
    for (const r of started) if (r.status === 'fulfilled') registries.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const [acrReg, garReg, ecrReg] = registries as [Registry, Registry, Registry];
    backends.acr = Number(acrReg.host.split(':')[1]);
    backends.gar = Number(garReg.host.split(':')[1]);
    backends.ecr = Number(ecrReg.host.split(':')[1]);
    // Pushing goes to the registries directly; tokens come from the stand-ins' realms (test CA).
    const pushEp = (r: Registry): RegistryEndpoint => ({ host: r.host, url: r.url, caPem: ca.certPem, ...pusher });
    return {
      url: (s) => `https://${Hosts[s]}:${port}`,
      port,
      metadataHost: `${LOOPBACK}:${plainPort}`,
      podIdentityUrl: `http://${LOOPBACK}:${plainPort}/v1/credentials`,
      ca,
      config,
      counts,
      issued,
      secrets: () => handedOut.slice(),
      resetCounts: () => {
        for (const s of services) counts[s] = issued[s] = 0;
      },
      push: { acr: pushEp(acrReg), ecr: { host: ecrReg.host, url: ecrReg.url }, gar: pushEp(garReg) },
      async stop() {
        unregister();
        server.closeAllConnections();
        plain.closeAllConnections();
        await Promise.all([new Promise<void>((r) => server.close(() => r())), new Promise<void>((r) => plain.close(() => r()))]);
        for (const r of registries) await r.stop();
      },
    };
  } catch (err) {
    server.close();
    plain.close();
    for (const r of registries) await r.stop();
    throw err;
  }
}
