// Test PKI made with the openssl CLI: a CA, server certificates (SAN IP:127.0.0.1, DNS:localhost
// by default) and client certificates for mTLS. Keys are ECDSA P-256 unless `keyType: 'rsa'`.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { runOk } from './proc.ts';

export interface CertFiles {
  /** PEM certificate file. */
  certFile: string;
  /** PEM private key file (PKCS#8, unencrypted). */
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface CA extends CertFiles {
  dir: string;
  subject: string;
}

export type KeyType = 'ec' | 'rsa';

export interface CAOptions {
  /** Common name (default "osc-test-ca"). */
  cn?: string;
  keyType?: KeyType;
  /** Validity in days (default 7). */
  days?: number;
}

export interface LeafOptions {
  /** File base name inside `dir` (default: cn sanitised). */
  name?: string;
  /** Common name (default "localhost" for servers, "client" for clients). */
  cn?: string;
  /** Extra subject attributes, e.g. "/O=system:masters". Appended after CN. */
  subjectSuffix?: string;
  /** subjectAltName entries, e.g. ["IP:127.0.0.1", "DNS:localhost"] (servers default to those two). */
  sans?: string[];
  keyType?: KeyType;
  days?: number;
  /** Directory for the files (default: the CA's directory). */
  dir?: string;
}

const OPENSSL = 'openssl';

function newKeyArgs(keyType: KeyType): string[] {
  return keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
}

function load(certFile: string, keyFile: string): CertFiles {
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}

function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

/** A self-signed CA in `dir` (ca.crt / ca.key). */
export async function createCA(dir: string, opts: CAOptions = {}): Promise<CA> {
  mkdirSync(dir, { recursive: true });
  const cn = opts.cn ?? 'osc-test-ca';
  const certFile = path.join(dir, 'ca.crt');
  const keyFile = path.join(dir, 'ca.key');
  const subject = `/CN=${cn}`;
  await runOk(OPENSSL, [
    'req', '-x509', ...newKeyArgs(opts.keyType ?? 'ec'), '-nodes', '-sha256',
    '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 7), '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  return { ...load(certFile, keyFile), dir, subject };
}

async function createLeaf(ca: CA, kind: 'server' | 'client', opts: LeafOptions): Promise<CertFiles> {
  const dir = opts.dir ?? ca.dir;
  mkdirSync(dir, { recursive: true });
  const cn = opts.cn ?? (kind === 'server' ? 'localhost' : 'client');
  const base = opts.name ?? sanitize(`${kind}-${cn}`);
  const keyFile = path.join(dir, `${base}.key`);
  const csrFile = path.join(dir, `${base}.csr`);
  const certFile = path.join(dir, `${base}.crt`);
  const extFile = path.join(dir, `${base}.ext`);
  const sans = opts.sans ?? (kind === 'server' ? ['IP:127.0.0.1', 'DNS:localhost'] : []);
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    `keyUsage=critical,digitalSignature${(opts.keyType ?? 'ec') === 'rsa' ? ',keyEncipherment' : ''}`,
    `extendedKeyUsage=${kind === 'server' ? 'serverAuth' : 'clientAuth'}`,
    'authorityKeyIdentifier=keyid',
    'subjectKeyIdentifier=hash',
  ];
  if (sans.length > 0) ext.push(`subjectAltName=${sans.join(',')}`);
  writeFileSync(extFile, ext.join('\n') + '\n');
  await runOk(OPENSSL, [
    'req', '-new', ...newKeyArgs(opts.keyType ?? 'ec'), '-nodes', '-sha256',
    '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${cn}${opts.subjectSuffix ?? ''}`,
  ]);
  await runOk(OPENSSL, [
    'x509', '-req', '-sha256', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile,
    '-set_serial', '0x' + randomBytes(8).toString('hex'),
    '-days', String(opts.days ?? 7), '-extfile', extFile, '-out', certFile,
  ]);
  return load(certFile, keyFile);
}

/** A server certificate signed by `ca` (SAN IP:127.0.0.1, DNS:localhost unless `sans` is given). */
export function createServerCert(ca: CA, opts: LeafOptions = {}): Promise<CertFiles> {
  return createLeaf(ca, 'server', opts);
}

/** A client certificate (EKU clientAuth) signed by `ca`, for mTLS. */
export function createClientCert(ca: CA, opts: LeafOptions = {}): Promise<CertFiles> {
  return createLeaf(ca, 'client', opts);
}

export interface TestPKI {
  ca: CA;
  server: CertFiles;
  client: CertFiles;
}

/** CA + server cert (127.0.0.1/localhost) + client cert in `dir`. */
export async function createTestPKI(dir: string, opts: { keyType?: KeyType } = {}): Promise<TestPKI> {
  const ca = await createCA(dir, { keyType: opts.keyType });
  const server = await createServerCert(ca, { name: 'server', keyType: opts.keyType });
  const client = await createClientCert(ca, { name: 'client', keyType: opts.keyType });
  return { ca, server, client };
}
