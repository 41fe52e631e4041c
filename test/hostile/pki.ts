// Certificates for the corpus: the signing chains of the good artifacts, a real RFC 3161 TSA
// (`openssl ts`), and the hostile shapes: many certificates sharing one subject and key (each
// "issues" every other), issuance cycles, and leaves whose names differ only outside the BMP.
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { makeTempDir } from '../harness/proc.ts';
import { issue, pem, type Issued } from '../helpers/notation-sign.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
/** RFC 5280 extended key usages (kept here: the corpus tests the controller from the outside). */
const EKU = { codeSigning: '1.3.6.1.5.5.7.3.3', timeStamping: '1.3.6.1.5.5.7.3.8' } as const;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;

let serial = 0x5000;

async function asIssued(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<Issued> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert, der: Buffer.from(cert.rawData), keys, privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), serial: cert.serialNumber };
}

export const newKeys = async (): Promise<CryptoKeyPair> => (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;

/** A notation signing chain: root CA → leaf (code signing). */
export async function notationChain(rootSubject: string, leafSubject: string, root?: Issued): Promise<{ root: Issued; leaf: Issued }> {
  const r = root ?? (await issue({ subject: rootSubject, ca: true }));
  const leaf = await issue({ subject: leafSubject, issuer: r, eku: [EKU.codeSigning] });
  return { root: r, leaf };
}

/** A TSA: root CA → leaf with a critical timeStamping EKU. */
export async function tsaChain(name: string): Promise<{ root: Issued; leaf: Issued }> {
  const root = await issue({ subject: `CN=${name} Root,O=tsa.test`, ca: true });
  const leaf = await issue({ subject: `CN=${name},O=tsa.test`, issuer: root, eku: [EKU.timeStamping], ekuCritical: true });
  return { root, leaf };
}

/**
 * `n` CA certificates with one subject and one key: every one verifies as the issuer of every
 * other, so a path builder that tries all orderings explores n! paths. Plus a TSA leaf they
 * issue, and which no trusted root reaches.
 */
export async function sharedKeyBomb(n: number, subject = 'CN=Loop CA,O=bomb.test'): Promise<{ certs: Issued[]; tsaLeaf: Issued }> {
  const keys = await newKeys();
  const certs: Issued[] = [];
  for (let i = 0; i < n; i++) {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: (serial++).toString(16),
      subject,
      issuer: subject,
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: SIG,
      // Distinct validity windows make every DER distinct.
      notBefore: new Date(Date.now() - 86400_000 - i * 1000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    certs.push(await asIssued(cert, keys));
  }
  const leafKeys = await newKeys();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16),
    subject: 'CN=Bomb TSA,O=bomb.test',
    issuer: subject,
    publicKey: leafKeys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: SIG,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true), new x509.ExtendedKeyUsageExtension([EKU.timeStamping], true)],
  });
  return { certs, tsaLeaf: await asIssued(leaf, leafKeys) };
}

/** Two CAs that issue each other (A→B→A), and a TSA leaf issued by A. */
export async function issuanceCycle(): Promise<{ certs: Issued[]; tsaLeaf: Issued }> {
  const ka = await newKeys();
  const kb = await newKeys();
  const ca = (subject: string, issuer: string, pub: CryptoKeyPair, signer: CryptoKeyPair) =>
    x509.X509CertificateGenerator.create({
      serialNumber: (serial++).toString(16),
      subject,
      issuer,
      publicKey: pub.publicKey,
      signingKey: signer.privateKey,
      signingAlgorithm: SIG,
      notBefore: new Date(Date.now() - 86400_000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
  const a = await ca('CN=Cycle A', 'CN=Cycle B', ka, kb);
  const b = await ca('CN=Cycle B', 'CN=Cycle A', kb, ka);
  const leafKeys = await newKeys();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16),
    subject: 'CN=Cycle TSA',
    issuer: 'CN=Cycle A',
    publicKey: leafKeys.publicKey,
    signingKey: ka.privateKey,
    signingAlgorithm: SIG,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true), new x509.ExtendedKeyUsageExtension([EKU.timeStamping], true)],
  });
  return { certs: [await asIssued(a, ka), await asIssued(b, kb)], tsaLeaf: await asIssued(leaf, leafKeys) };
}

export interface TSA {
  /** RFC 3161 TimeStampToken (CMS SignedData) over SHA-256(`data`), as notation embeds it. */
  token(data: Buffer): Buffer;
  /** RFC 3161 TimeStampResp over SHA-256(`data`), as cosign's rfc3161timestamp annotation holds it. */
  response(data: Buffer): Buffer;
}

/**
 * A real TSA: `openssl ts -reply` signing with `signer`; `certs` are the certificates the token
 * carries besides the signer's (openssl copies them in verbatim, which is how a hostile TSA
 * answer is made here: the bomb certificates travel in a properly signed token).
 */
export function opensslTSA(signer: Issued, certs: Issued[]): TSA {
  const dir = makeTempDir('osc-hostile-tsa-');
  writeFileSync(path.join(dir, 'tsa.crt'), pem(signer));
  writeFileSync(path.join(dir, 'certs.pem'), certs.length ? pem(...certs) : '');
  writeFileSync(path.join(dir, 'tsa.key'), signer.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(dir, 'serial'), '01\n');
  writeFileSync(
    path.join(dir, 'ts.cnf'),
    ['[ tsa ]', 'default_tsa = c', '[ c ]', `dir = ${dir}`, 'serial = $dir/serial', 'signer_cert = $dir/tsa.crt', ...(certs.length ? ['certs = $dir/certs.pem'] : []), 'signer_key = $dir/tsa.key', 'signer_digest = sha256', 'default_policy = 1.2.3.4.1', 'digests = sha256', 'accuracy = secs:1', 'ordering = no', 'tsa_name = no', 'ess_cert_id_chain = no', 'ess_cert_id_alg = sha256', ''].join('\n'),
  );
  const reply = (data: Buffer, tokenOnly: boolean): Buffer => {
    const q = path.join(dir, 'q.tsq');
    const out = path.join(dir, 'out.der');
    execFileSync('openssl', ['ts', '-query', '-digest', createHash('sha256').update(data).digest('hex'), '-sha256', '-cert', '-no_nonce', '-out', q], { stdio: 'pipe' });
    execFileSync('openssl', ['ts', '-reply', '-config', path.join(dir, 'ts.cnf'), '-queryfile', q, ...(tokenOnly ? ['-token_out'] : []), '-out', out], { stdio: 'pipe' });
    return readFileSync(out);
  };
  return { token: (d) => reply(d, true), response: (d) => reply(d, false) };
}

export { issue, pem, type Issued };
