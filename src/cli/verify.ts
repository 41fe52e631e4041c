// `oci-source-controller verify`: the controller's verification on a directory holding the
// Secret's keys as files (the layout of a mounted Secret volume). Exit 0 verified (or skipped by
// the trust policy), 1 rejected, 2 usage or access errors.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { LimitError } from '../api/limits.ts';
import { parseDuration } from '../controller/queue.ts';
import { RegistryError } from '../oci/errors.ts';
import { resolveRef, ResolveError } from '../oci/resolve.ts';
import { Transport } from '../oci/transport.ts';
import { createProviders } from '../verify/providers.ts';
import { INCONCLUSIVE_CODES, VerifyConfigError, type OIDCIdentityMatch, type ProviderName, type SecretInput, type VerifyConfig } from '../verify/types.ts';
import { parse, UsageError } from './args.ts';
import { clientFromFlags, refFromFlags, sourceFlags, sourceUsage } from './source.ts';

export const verifyUsage = `Usage: oci-source-controller verify <oci://host/repo> --provider notation|cosign [--secret-dir DIR] [flags]

Verifies the artifact's signatures exactly as the controller does, with the Secret's keys given
as files in DIR (as in a mounted Secret volume). Exit 0: verified; 1: rejected; 2: usage or access error.

  --provider notation|cosign        signature provider (required)
  --secret-dir DIR                  notation: trustpolicy.json + certificates; cosign: *.pub keys (omit for keyless)
  --match-oidc-identity issuer=RE,subject=RE   keyless identity rule (repeatable)
  --trusted-root FILE               Sigstore trusted_root.json for a private Sigstore instance
  --max-signatures N                signatures tried (default 10)
  -o, --output text|json            output format (default text)
${sourceUsage}`;

/** Reads a mounted-Secret directory: regular files (symlinks followed), skipping `..data` internals. */
export function readSecretDir(dir: string): SecretInput {
  const data: Record<string, Buffer> = {};
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new UsageError(`--secret-dir: cannot read '${dir}': ${(err as Error).message}`);
  }
  for (const n of names) {
    if (n.startsWith('..')) continue;
    const p = path.join(dir, n);
    if (statSync(p).isFile()) data[n] = readFileSync(p);
  }
  return { name: `dir:${dir}`, data };
}

export function parseIdentity(s: string): OIDCIdentityMatch {
  const m = /^issuer=(.*),subject=(.*)$/s.exec(s);
  if (!m) throw new UsageError(`--match-oidc-identity must be issuer=REGEXP,subject=REGEXP, got '${s}'`);
  return { issuer: m[1]!, subject: m[2]! };
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, {
    ...sourceFlags,
    provider: { type: 'string' },
    'secret-dir': { type: 'string' },
    'match-oidc-identity': { type: 'string', multiple: true },
    'trusted-root': { type: 'string' },
    'max-signatures': { type: 'string', default: '10' },
    output: { type: 'string', short: 'o', default: 'text' },
  });
  const url = positionals[0];
  if (!url || positionals.length > 1) throw new UsageError('verify takes exactly one oci:// URL');
  if (v.provider !== 'notation' && v.provider !== 'cosign') throw new UsageError('--provider must be notation or cosign');
  if (v.output !== 'text' && v.output !== 'json') throw new UsageError('--output must be text or json');
  const provider = v.provider as ProviderName;
  const config: VerifyConfig = { provider };
  if (v['secret-dir']) config.secret = readSecretDir(v['secret-dir']);
  if (v['trusted-root']) {
    try {
      config.trustedRoot = { name: `file:${v['trusted-root']}`, data: { 'trusted_root.json': readFileSync(v['trusted-root']) } };
    } catch (err) {
      throw new UsageError(`--trusted-root: ${(err as Error).message}`);
    }
  }
  if (v['match-oidc-identity']?.length) config.matchOIDCIdentity = v['match-oidc-identity'].map(parseIdentity);
  if (provider === 'notation' && !config.secret) throw new UsageError('--secret-dir is required for notation');
  const maxSignatures = Number(v['max-signatures']);
  if (!Number.isInteger(maxSignatures) || maxSignatures < 1) throw new UsageError('--max-signatures must be a positive integer');

  const signal = AbortSignal.timeout(parseDuration(v.timeout!));
  const transport = new Transport();
  const json = v.output === 'json';
  const emit = (obj: Record<string, unknown>, text: string) => process.stdout.write(json ? JSON.stringify(obj, null, 2) + '\n' : text + '\n');
  try {
    const client = clientFromFlags(url, v, signal, transport);
    const prepared = await createProviders()[provider].prepare(config);
    const resolved = await resolveRef(client, refFromFlags(v));
    const outcome = await prepared.verify({ registry: client, descriptor: resolved.descriptor, ...(resolved.tag ? { tag: resolved.tag } : {}) }, { limits: { maxSignatures }, signal, deadline: `--timeout ${v.timeout!}` });
    const label = provider === 'cosign' && !config.secret ? 'cosign keyless' : provider;
    emit(
      {
        status: outcome.status,
        provider: label,
        revision: resolved.revision,
        digest: resolved.descriptor.digest,
        message: outcome.message,
        ...(outcome.status === 'failed' ? { code: outcome.code } : { authenticity: outcome.authenticity }),
        details: outcome.details,
        warnings: outcome.warnings,
        notes: prepared.notes,
        attempts: outcome.attempts,
      },
      [
        `${outcome.status === 'failed' ? 'REJECTED' : outcome.status === 'skipped' ? 'SKIPPED' : 'VERIFIED'} ${resolved.revision} (${label})`,
        outcome.message,
        ...prepared.notes.map((n) => `note: ${n}`),
        ...outcome.warnings.map((w) => `warning: ${w}`),
      ].join('\n'),
    );
    if (outcome.status !== 'failed') return 0;
    // A registry error or a timeout says nothing about the signatures: an access error, not a rejection.
    return INCONCLUSIVE_CODES.has(outcome.code) ? 2 : 1;
  } catch (err) {
    if (err instanceof VerifyConfigError || err instanceof RegistryError || err instanceof ResolveError || err instanceof LimitError) {
      emit({ status: 'error', error: err.message, ...(err instanceof VerifyConfigError ? { code: err.code } : {}) }, `ERROR ${err.message}`);
      return 2;
    }
    throw err;
  } finally {
    await transport.close();
  }
}
