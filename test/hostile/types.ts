// The shape of one hostile-input case: what the attacker controls, how the attack is applied
// after the object was Ready on a good signed artifact, and what a user must see (the expected
// outcome lives next to the input that causes it, in cases/*.ts).
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { World } from './world.ts';

export type Category =
  | 'manifest'
  | 'descriptor'
  | 'tarball'
  | 'envelope'
  | 'chain'
  | 'tags'
  | 'referrers'
  | 'secret'
  | 'http';

export const CategoryTitles: Record<Category, string> = {
  manifest: 'malformed and oversized manifests and indexes',
  descriptor: 'descriptor mismatches (size, digest, mediaType lies)',
  tarball: 'tarball attacks (traversal, links, devices, depth, entry count, gzip bombs, truncated/concatenated streams, PAX/GNU headers)',
  envelope: 'JWS/COSE/CBOR/ASN.1 malformations and bombs',
  chain: 'certificate-chain bombs and loops',
  tags: 'hostile tag lists',
  referrers: 'referrer and signature floods',
  secret: 'bad Secrets, trust policies and spec fields (tenant)',
  http: 'hostile HTTP answers',
};

/**
 * How the object verifies, and so how its good artifact is signed:
 * - cosign-key: a cosign key pair per namespace, legacy `.sig` signatures;
 * - notation: a CA → leaf chain, JWS envelopes as OCI referrers, trust store `ca:hostile`;
 * - notation-tsa: as notation, plus an `openssl ts` countersignature and trust store `tsa:hostile`;
 * - keyless: a private Sigstore (Fulcio-like CA, Rekor and CT keys) in a trusted_root.json Secret;
 * - keyless-tsa: keyless with an `openssl ts` TSA also listed in the trusted root.
 */
export type Profile = 'cosign-key' | 'notation' | 'notation-tsa' | 'keyless' | 'keyless-tsa';

/** A request seen by the hostile server, parsed the way a registry would route it. */
export interface HostileRequest {
  method: string;
  path: string;
  url: URL;
  kind: 'manifest' | 'blob' | 'tags' | 'referrers' | 'custom';
  /** manifest tag/digest, blob digest, referrers subject; the rest of the path for custom routes. */
  ref: string;
  headers: IncomingHttpHeaders;
  scheme: 'http' | 'https';
  /** host:port the request came in on. */
  host: string;
}

/** Answers a request for the case's repository, or lets it through to the real registry. */
export type Behaviour = (req: HostileRequest, res: ServerResponse) => 'pass' | void | Promise<'pass' | void>;

/** The case's own repository and the names it may use. */
export interface CaseContext {
  world: World;
  id: string;
  namespace: string;
  /** Repository path, e.g. hostile/tar-dotdot. */
  repo: string;
  /** Where the object points: the real registry, or the hostile server in front of it. */
  host: string;
  /** The good artifact the object was Ready on. */
  good: { manifestDigest: string; manifest: Buffer; layerDigest: string; layer: Buffer; configDigest: string };
}

/** What the attacker changes once the object is Ready on its good artifact. */
export type Attack =
  /** Registry content: push hostile content to the real registry and move tag v1 to it. */
  | { kind: 'push'; run(ctx: CaseContext): Promise<void> }
  /** Registry behaviour: the hostile server answers for this repository from now on. */
  | { kind: 'serve'; behaviour(ctx: CaseContext): Behaviour | Promise<Behaviour>; prepare?: (ctx: CaseContext) => Promise<void> }
  /** Tenant: replace the data of one of the object's Secrets (created for this case). */
  | { kind: 'secret'; secret: 'verify' | 'trustedRoot' | 'auth' | 'cert' | 'proxy'; data(ctx: CaseContext): Record<string, string | Buffer> | Promise<Record<string, string | Buffer>> }
  /** Tenant: change the object's spec (merge patch), after `prepare` (e.g. a signature for it to meet). */
  | { kind: 'spec'; patch(ctx: CaseContext): Record<string, unknown> | Promise<Record<string, unknown>>; prepare?: (ctx: CaseContext) => Promise<void> };

/** The reconcile's answer: a condition on the object, mirrored by Ready=False. */
export interface ConditionExpect {
  kind: 'condition';
  /** The condition that owns the failure: FetchFailed, SourceVerified, StorageOperationFailed, Stalled. */
  type: 'FetchFailed' | 'SourceVerified' | 'StorageOperationFailed' | 'Stalled';
  /** FetchFailed/StorageOperationFailed/Stalled are True when failing; SourceVerified is False. */
  status: 'True' | 'False';
  /** Accepted reasons (several where the failure may be caught at either of two steps). */
  reason: string[];
  /** A fragment a user can act on (what is wrong, and with which input). */
  message: RegExp;
}

/** The API server refuses the tenant's change (schema validation); the object keeps its good state. */
export interface AdmissionExpect {
  kind: 'admission';
  message: RegExp;
}

export type Expect = ConditionExpect | AdmissionExpect;

/** The same input through the CLI: `verify` or `pull` against the hostile state. */
export interface CliExpect {
  command: 'verify' | 'pull';
  exit: number;
  message: RegExp;
}

export interface HostileCase {
  /** Unique, a DNS-1123 label: the object, repository and Secret names derive from it. */
  id: string;
  category: Category;
  /** What the attacker does, in a sentence. */
  title: string;
  /** Who controls the hostile input. */
  attacker: 'registry' | 'tenant';
  /** Issue 7 item this case is the regression test of. */
  item?: 1 | 2 | 3 | 4 | 5;
  profile: Profile;
  /**
   * Serve the object through the hostile server (needed for `serve` attacks): its shared listener,
   * a listener of its own ('own': a registry host no other case talks to, for auth challenges), or
   * its own listener speaking TLS and plain HTTP on one port ('tls').
   */
  viaHostile?: boolean | 'own' | 'tls';
  /** spec.ref: tag v1 by default; semver for tag-list cases. */
  ref?: 'tag' | 'semver';
  /** spec.timeout (default 20s). */
  timeout?: string;
  /** Extra spec fields for the good phase (e.g. layerSelector). */
  spec?: Record<string, unknown>;
  /** Extra Secrets the good phase needs (e.g. registry credentials for an auth case). */
  setup?: (ctx: CaseContext) => Promise<Record<string, unknown>>;
  attack: Attack;
  expect: Expect;
  cli?: CliExpect;
  /**
   * Run alone: the input could stall or crash a process that lacks the fix, and a failure must be
   * blamed on this case only.
   */
  solo?: boolean;
  /** A check of its own after the outcome (e.g. credentials never reached plain HTTP). */
  after?: (ctx: CaseContext) => Promise<string | undefined>;
}

// ---------------------------------------------------------------------------------------------
// Expectation shorthands. Reasons are the Flux vocabulary of src/api/conditions.ts.

/** The artifact (manifest, layer, archive) is refused while pulling or unpacking. */
export const layerFailed = (message: RegExp): ConditionExpect => ({ kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['OCIArtifactLayerOperationFailed', 'OCIArtifactPullFailed'], message });
/** A registry call failed or answered nonsense while resolving or pulling. */
export const pullFailed = (message: RegExp): ConditionExpect => ({ kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['OCIArtifactPullFailed'], message });
/** Tag listing (semver) failed. */
export const readFailed = (message: RegExp): ConditionExpect => ({ kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['ReadOperationFailed', 'OCIArtifactPullFailed'], message });
/** Registry credentials, TLS or proxy configuration is unusable. */
export const authFailed = (message: RegExp): ConditionExpect => ({ kind: 'condition', type: 'FetchFailed', status: 'True', reason: ['AuthenticationFailed', 'OCIArtifactPullFailed'], message });
/** Signature verification refused the artifact (or its trust material). */
export const notVerified = (message: RegExp): ConditionExpect => ({ kind: 'condition', type: 'SourceVerified', status: 'False', reason: ['VerificationError'], message });
export const refusedByAPI = (message: RegExp): AdmissionExpect => ({ kind: 'admission', message });

/** `verify` exit codes: 1 the signatures were rejected, 2 the input or the registry was unusable. */
export const cliVerify = (exit: 1 | 2, message: RegExp): CliExpect => ({ command: 'verify', exit, message });
/** `pull` exits 2 with `error: <message>` on any failure. */
export const cliPull = (message: RegExp): CliExpect => ({ command: 'pull', exit: 2, message });
