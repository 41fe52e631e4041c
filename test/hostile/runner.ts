// Drives each case through the real controller: the object becomes Ready on a good signed
// artifact, the attacker changes one thing, and the runner records the reconcile's answer, the
// process's event-loop delay and RSS while the case was in flight, whether the last good artifact
// is still served, and then the same input through the `verify`/`pull` CLI. Cases share the
// controller and the registry; risky ones run alone so a stall or crash is blamed on one case.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Cond, RepoObject } from '../helpers/controller-env.ts';
import { projectRoot } from '../helpers/shared.ts';
import { mib, procStatus, type Trouble } from './monitor.ts';
import { pem } from './pki.ts';
import type { CaseContext, CliExpect, HostileCase } from './types.ts';
import { ArtifactMaxSize, Bounds, goodLayer, isKeyless, KeylessIdentity, namespaceOf, profileSecret, providerOf, pushArtifact, putSecret, signGood, type World } from './world.ts';

export interface CliResult {
  args: string[];
  exit: number | null;
  signal: string | null;
  output: string;
  ms: number;
  peakRssBytes: number;
}

export interface CaseResult {
  id: string;
  /** Object, repository and Secret name prefix (the id, or id-r for a solo re-run). */
  name: string;
  /** Empty when every assertion held. */
  failures: string[];
  /**
   * Failures of the process (stall, exit, event-loop delay, RSS) while the case was in flight:
   * with other cases in flight too, the blame is shared until a solo re-run settles it.
   */
  processFailures: string[];
  /** When the verdict comes from a solo re-run: what the shared run had seen. */
  sharedRun?: string[];
  /** The controller never answered the hostile input (or the good one). */
  noAnswer?: boolean;
  ready?: Cond;
  condition?: Cond;
  admission?: string;
  window?: { maxDelayS: number; maxRssBytes: number; ms: number };
  cli?: CliResult;
  ms: number;
  /** Milliseconds spent per phase (good, hostile, cli), for the verbose log. */
  phases: Record<string, number>;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const cond = (o: RepoObject | undefined, t: string): Cond | undefined => o?.status?.conditions?.find((c) => c.type === t);
const repoPath = (ns: string, name: string): string => `/apis/source.ocisource.dev/v1/namespaces/${ns}/ocirepositories/${name}`;

interface Inflight {
  hostilePhase: boolean;
  abort: AbortController;
  troubles: Trouble[];
  ns: string;
  name: string;
}

export class Runner {
  readonly world: World;
  readonly #inflight = new Map<string, Inflight>();
  #restarting: Promise<void> = Promise.resolve();

  constructor(world: World) {
    this.world = world;
    world.onTrouble = (t) => this.#trouble(t);
  }

  /** A stalled, crashed or runaway controller: blame the cases in their hostile phase, restart. */
  #trouble(t: Trouble): void {
    const blamed = [...this.#inflight.values()].filter((f) => f.hostilePhase);
    for (const f of blamed) {
      f.troubles.push(t);
      f.abort.abort(new Error(`controller ${t.kind}: ${t.detail}`));
    }
    this.#restarting = this.#restarting.then(async () => {
      // The restarted process must not run the same input again: suspend what was in flight.
      for (const f of blamed) await this.#patch(f.ns, f.name, { spec: { suspend: true } }).catch(() => undefined);
      await this.world.restart(`${t.kind}: ${t.detail} (cases in flight: ${blamed.map((f) => f.name).join(', ') || 'none'})`);
    });
  }

  async #patch(ns: string, name: string, body: unknown): Promise<{ status: number; text: string }> {
    return this.world.cluster.request('PATCH', repoPath(ns, name), { body, contentType: 'application/merge-patch+json' });
  }

  /**
   * Runs every case: the shared ones `concurrency - 1` at a time, next to a lane that runs the solo
   * ones one after the other (two risky inputs are never in flight together); then each case
   * whose process-level checks failed runs again alone, and that verdict stands (a stall or a
   * delay spike with several cases in flight says little about which one caused it).
   */
  async runAll(cases: HostileCase[], concurrency: number, onResult?: (r: CaseResult) => void): Promise<Map<string, CaseResult>> {
    const results = new Map<string, CaseResult>();
    const record = (r: CaseResult) => {
      results.set(r.id, r);
      onResult?.(r);
    };
    const lane = async (list: HostileCase[], workers: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: workers }, async () => {
          while (next < list.length) {
            const c = list[next++]!;
            record(await this.run(c, c.id));
          }
        }),
      );
    };
    await Promise.all([lane(cases.filter((c) => !c.solo), Math.max(1, concurrency - 1)), lane(cases.filter((c) => c.solo), 1)]);
    for (const c of cases) {
      const first = results.get(c.id)!;
      if (first.processFailures.length === 0) continue;
      const again = await this.run(c, `${c.id}-r`);
      again.sharedRun = [...first.processFailures, ...first.failures];
      record(again);
    }
    await this.#restarting;
    return results;
  }

  /** Object names every run used (the storage audit allows exactly these). */
  readonly names = new Set<string>();

  async run(c: HostileCase, name: string): Promise<CaseResult> {
    const started = Date.now();
    const ns = namespaceOf(c.category);
    this.names.add(`${ns}/${name}`);
    const f: Inflight = { hostilePhase: false, abort: new AbortController(), troubles: [], ns, name };
    this.#inflight.set(name, f);
    const r: CaseResult = { id: c.id, name, failures: [], processFailures: [], ms: 0, phases: {} };
    try {
      await this.#run(c, f, r);
    } catch (err) {
      r.failures.push((err as Error).message);
    } finally {
      this.#inflight.delete(name);
      // Quiet from now on: the object keeps its artifact but is not reconciled again.
      await this.#restarting;
      await this.#patch(ns, name, { spec: { suspend: true } }).catch(() => undefined);
      // No answer: its reconcile may still be running (suspending does not stop it), and would
      // starve the cases after it. A fresh process isolates them.
      if (r.noAnswer && !f.troubles.length) {
        this.#trouble({ t: Date.now(), pid: this.world.ctrl.proc.pid, kind: 'stuck', detail: `no answer for case ${name}` });
        await this.#restarting;
      }
      r.ms = Date.now() - started;
    }
    return r;
  }

  async #run(c: HostileCase, f: Inflight, r: CaseResult): Promise<void> {
    const { world } = this;
    const ns = f.ns;
    const name = f.name;
    const repo = `hostile/${name}`;
    const host = c.viaHostile === 'own' ? await world.hostile.listen() : c.viaHostile === 'tls' ? await world.hostile.listen(world.hostileTLS) : c.viaHostile ? world.hostile.host : world.registry.host;
    const tag = c.ref === 'semver' ? '1.0.0' : 'v1';

    // Good phase: a signed artifact the object becomes Ready on.
    const t0 = Date.now();
    const good = await pushArtifact(world.registry, repo, tag, goodLayer(name));
    const ctx: CaseContext = { world, id: name, namespace: ns, repo, host, good };
    await signGood(world, c.profile, repo, { digest: good.manifestDigest, size: good.manifest.length, mediaType: 'application/vnd.oci.image.manifest.v1+json' });

    const secretName = (kind: string) => `${name}-${kind}`;
    const tenantSecret = c.attack.kind === 'secret' ? c.attack.secret : undefined;
    const verify: Record<string, unknown> = { provider: providerOf(c.profile) };
    if (isKeyless(c.profile)) {
      verify.matchOIDCIdentity = [KeylessIdentity];
      verify.trustedRootSecretRef = { name: tenantSecret === 'trustedRoot' ? secretName('trustedroot') : `profile-${c.profile}` };
    } else {
      verify.secretRef = { name: tenantSecret === 'verify' ? secretName('verify') : `profile-${c.profile}` };
    }
    const spec: Record<string, unknown> = {
      url: `oci://${host}/${repo}`,
      interval: '1h',
      timeout: c.timeout ?? '20s',
      insecure: c.viaHostile !== 'tls',
      ref: c.ref === 'semver' ? { semver: '>=1.0.0' } : { tag },
      verify,
      ...c.spec,
    };
    if (tenantSecret === 'verify' || tenantSecret === 'trustedRoot') {
      await this.#secret(ns, tenantSecret === 'verify' ? secretName('verify') : secretName('trustedroot'), profileSecret(world.trust, c.profile));
    } else if (tenantSecret === 'auth') {
      await this.#secret(ns, secretName('auth'), { '.dockerconfigjson': JSON.stringify({ auths: { [host]: { username: 'tenant', password: 'tenant-password' } } }) });
      spec.secretRef = { name: secretName('auth') };
    } else if (tenantSecret === 'cert') {
      await this.#secret(ns, secretName('cert'), { 'ca.crt': pem(world.trust.notation.root).toString() });
      spec.certSecretRef = { name: secretName('cert') };
    } else if (tenantSecret === 'proxy') {
      await this.#secret(ns, secretName('proxy'), { address: `http://${world.hostile.host}` });
      spec.proxySecretRef = { name: secretName('proxy') };
    }
    if (c.viaHostile === 'tls') {
      await this.#secret(ns, secretName('ca'), { 'ca.crt': world.hostileTLS.caPem });
      spec.certSecretRef = { name: secretName('ca') };
    }
    if (c.setup) Object.assign(spec, await c.setup(ctx));

    r.phases.push = Date.now() - t0;
    const created = await world.cluster.request('POST', `/apis/source.ocisource.dev/v1/namespaces/${ns}/ocirepositories`, {
      body: { apiVersion: 'source.ocisource.dev/v1', kind: 'OCIRepository', metadata: { name, namespace: ns }, spec },
    });
    if (created.status !== 201) throw new Error(`setup: creating the object failed: ${created.status} ${created.text}`);
    const goodRev = `${tag}@${good.manifestDigest}`;
    let ready: RepoObject;
    try {
      ready = await world.board.until(ns, name, (o) => cond(o, 'Ready')?.status === 'True' && o.status?.observedGeneration === o.metadata.generation && o.status?.artifact?.revision === goodRev, `Ready on the good artifact ${goodRev}`, 120_000, f.abort.signal);
    } catch (err) {
      // Not this case's input yet: a controller busy with another case. Counted as a process
      // failure, so the case runs again alone.
      r.noAnswer = true;
      r.processFailures.push(`setup: ${(err as Error).message}`);
      return;
    }
    const goodArtifact = ready.status!.artifact!;
    r.phases.good = Date.now() - t0;

    // Hostile phase.
    f.hostilePhase = true;
    const from = Date.now();
    const token = `hostile-${name}-${from}`;
    const annotate = { metadata: { annotations: { 'reconcile.ocisource.dev/requestedAt': token } } };
    let cliSecret: Record<string, string | Buffer> | undefined;
    let cliIdentity: { issuer: string; subject: string }[] | undefined;
    const a = c.attack;
    let reconciled = true;
    if (a.kind === 'push') {
      await a.run(ctx);
    } else if (a.kind === 'serve') {
      await a.prepare?.(ctx);
      world.hostile.set(repo, await a.behaviour(ctx));
    } else if (a.kind === 'secret') {
      const data = await a.data(ctx);
      cliSecret = data;
      const name = a.secret === 'trustedRoot' ? secretName('trustedroot') : secretName(a.secret);
      const put = await putSecret(world.cluster, ns, name, data);
      if (put.status !== 200 && put.status !== 201) throw new Error(`setup: the API server refused the hostile Secret: ${put.status} ${put.text.slice(0, 300)}`);
    }
    if (a.kind === 'spec') {
      await a.prepare?.(ctx);
      const patch = await a.patch(ctx);
      const v = (patch.verify as { matchOIDCIdentity?: { issuer: string; subject: string }[] } | undefined)?.matchOIDCIdentity;
      if (v) cliIdentity = v;
      const res = await this.#patch(ns, name, { ...annotate, spec: patch });
      if (res.status !== 200) {
        r.admission = res.text;
        reconciled = false;
      }
    } else {
      const res = await this.#patch(ns, name, annotate);
      if (res.status !== 200) throw new Error(`setup: annotating failed: ${res.status} ${res.text}`);
    }

    let outcome: RepoObject | undefined;
    if (reconciled) {
      try {
        outcome = await world.board.until(ns, name, (o) => o.status?.lastHandledReconcileAt === token, 'the reconcile of the hostile input', Math.max(90_000, parseTimeout(c.timeout ?? '20s') + 30_000), f.abort.signal);
      } catch (err) {
        r.noAnswer = true;
        (f.troubles.length ? r.processFailures : r.failures).push(`no answer from the controller: ${(err as Error).message}`);
      }
    }
    await world.monitor.sample();
    const to = Date.now();
    f.hostilePhase = false;
    await this.#restarting;

    // The process: up, responsive, bounded.
    const w = world.monitor.window(from, to);
    r.window = { maxDelayS: w.maxDelayS, maxRssBytes: w.maxRssBytes, ms: to - from };
    for (const t of [...f.troubles, ...w.troubles.filter((t) => !f.troubles.includes(t))]) r.processFailures.push(`controller ${t.kind} while the case was in flight: ${t.detail}`);
    if (w.maxDelayS > Bounds.eventLoopDelayS) r.processFailures.push(`event-loop delay ${w.maxDelayS.toFixed(2)} s exceeds the ${Bounds.eventLoopDelayS} s bound`);
    if (w.maxRssBytes > Bounds.rssBytes) r.processFailures.push(`RSS ${mib(w.maxRssBytes)} exceeds the ${mib(Bounds.rssBytes)} bound`);
    if (!world.ctrl.proc.running()) r.processFailures.push('the controller process is not running');

    // The answer the user sees.
    const e = c.expect;
    if (e.kind === 'admission') {
      if (r.admission === undefined) r.failures.push('the API server accepted the hostile spec (expected a schema validation error)');
      else if (!e.message.test(r.admission)) r.failures.push(`the API server refused the spec, but not with ${e.message}: ${r.admission.slice(0, 500)}`);
      const now = world.board.get(ns, name);
      if (cond(now, 'Ready')?.status !== 'True') r.failures.push(`the object is no longer Ready after a refused spec change: ${JSON.stringify(now?.status?.conditions)}`);
    } else if (outcome) {
      r.ready = cond(outcome, 'Ready');
      r.condition = cond(outcome, e.type);
      const show = (x?: Cond) => (x ? `${x.status}/${x.reason}: ${x.message.slice(0, 600)}` : 'absent');
      if (r.ready?.status !== 'False') {
        r.failures.push(`Ready is ${show(r.ready)}${outcome.status?.artifact?.revision !== goodRev ? ` and the hostile revision ${outcome.status?.artifact?.revision} was stored` : ''} (expected False: ${e.type} ${e.reason.join('|')} ${e.message})`);
      } else {
        if (!e.reason.includes(r.ready.reason)) r.failures.push(`Ready reason ${r.ready.reason}, expected ${e.reason.join(' or ')} (message: ${r.ready.message.slice(0, 600)})`);
        if (!e.message.test(r.ready.message)) r.failures.push(`Ready message does not match ${e.message}: ${r.ready.message.slice(0, 800)}`);
      }
      if (r.condition?.status !== e.status) r.failures.push(`${e.type} is ${show(r.condition)}, expected status ${e.status}`);
    }

    // The last good artifact is still recorded and served.
    const now = world.board.get(ns, name) ?? outcome;
    const art = now?.status?.artifact;
    if (art?.revision !== goodRev || art.digest !== goodArtifact.digest) r.failures.push(`the recorded artifact changed from ${goodRev} (${goodArtifact.digest}) to ${art?.revision} (${art?.digest})`);
    try {
      const res = await fetch(goodArtifact.url, { signal: AbortSignal.timeout(20_000) });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200 || sha256(body) !== goodArtifact.digest) r.failures.push(`the last good artifact is not served: HTTP ${res.status}, digest ${sha256(body)} (want ${goodArtifact.digest})`);
    } catch (err) {
      r.failures.push(`the last good artifact is not served: ${(err as Error).message}`);
    }

    if (c.after) {
      const problem = await c.after(ctx);
      if (problem) r.failures.push(problem);
    }

    r.phases.hostile = Date.now() - from;
    if (c.cli) {
      r.cli = await this.#cli(c, ctx, tag, cliSecret, cliIdentity);
      const x = c.cli;
      r.phases.cli = r.cli.ms;
      if (r.cli.signal) r.failures.push(`CLI ${x.command} was killed (${r.cli.signal}) after ${r.cli.ms} ms: ${r.cli.output.slice(-400)}`);
      else if (r.cli.exit !== x.exit) r.failures.push(`CLI ${x.command} exited ${r.cli.exit}, expected ${x.exit}: ${r.cli.output.slice(0, 600)}`);
      if (!x.message.test(r.cli.output)) r.failures.push(`CLI ${x.command} output does not match ${x.message}: ${r.cli.output.slice(0, 600)}`);
      if (r.cli.peakRssBytes > Bounds.rssBytes) r.failures.push(`CLI ${x.command} peak RSS ${mib(r.cli.peakRssBytes)} exceeds the ${mib(Bounds.rssBytes)} bound`);
    }
  }

  async #secret(ns: string, name: string, data: Record<string, string | Buffer>): Promise<void> {
    const r = await putSecret(this.world.cluster, ns, name, data);
    if (r.status !== 200 && r.status !== 201) throw new Error(`setup: Secret ${ns}/${name}: ${r.status} ${r.text.slice(0, 300)}`);
  }

  /** The CLI on the hostile state, as a separate process; its peak RSS is sampled from /proc. */
  async #cli(c: HostileCase, ctx: CaseContext, tag: string, secret: Record<string, string | Buffer> | undefined, identity: { issuer: string; subject: string }[] | undefined): Promise<CliResult> {
    const x = c.cli as CliExpect;
    const dir = path.join(this.world.dir, 'cli', ctx.id);
    mkdirSync(dir, { recursive: true });
    const url = `oci://${ctx.host}/${ctx.repo}`;
    const ref = c.ref === 'semver' ? ['--semver', '>=1.0.0'] : ['--tag', tag];
    const args = [path.join(projectRoot, 'src/main.ts'), x.command, url, ...ref, '--insecure', '--timeout', c.timeout ?? '20s'];
    if (x.command === 'pull') {
      args.push('--artifact-max-size', String(ArtifactMaxSize), '-o', path.join(dir, 'out'), '--name', `${ctx.namespace}/${ctx.id}`);
      if (c.spec?.layerSelector) {
        const ls = c.spec.layerSelector as { mediaType?: string; operation?: string };
        if (ls.mediaType) args.push('--layer-media-type', ls.mediaType);
        if (ls.operation) args.push('--operation', ls.operation);
      }
    } else {
      args.push('--provider', providerOf(c.profile), '-o', 'json');
      const data = secret ?? profileSecret(this.world.trust, c.profile);
      if (isKeyless(c.profile)) {
        const file = path.join(dir, 'trusted_root.json');
        writeFileSync(file, data['trusted_root.json'] ?? '');
        args.push('--trusted-root', file);
        for (const id of identity ?? [KeylessIdentity]) args.push('--match-oidc-identity', `issuer=${id.issuer},subject=${id.subject}`);
      } else {
        const sd = path.join(dir, 'secret');
        mkdirSync(sd, { recursive: true });
        for (const [k, v] of Object.entries(data)) writeFileSync(path.join(sd, k), v);
        args.push('--secret-dir', sd);
      }
    }
    const started = Date.now();
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let peak = 0;
    const poll = setInterval(() => {
      const st = child.pid ? procStatus(child.pid) : undefined;
      if (st && Number.isFinite(st.hwmBytes)) peak = Math.max(peak, st.hwmBytes);
    }, 50);
    const limitMs = parseTimeout(c.timeout ?? '20s') + 30_000;
    const kill = setTimeout(() => child.kill('SIGKILL'), limitMs);
    // 'close', not 'exit': the output may still be in the pipes when the process has exited.
    const [exit, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('close', (code, sig) => resolve([code, sig])));
    clearInterval(poll);
    clearTimeout(kill);
    return { args: args.slice(1), exit, signal, output, ms: Date.now() - started, peakRssBytes: peak };
  }
}

function parseTimeout(s: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(s);
  if (!m) return 60_000;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

/**
 * Every file under the storage root must be an artifact of a known object, `latest.tar.gz`
 * linking to a sibling, or nothing at all (work directories are removed once a reconcile ends).
 */
export function auditStorage(root: string, objects: Set<string>): string[] {
  const problems: string[] = [];
  const walk = (rel: string): void => {
    const abs = path.join(root, rel);
    const st = lstatSync(abs);
    const parts = rel ? rel.split('/') : [];
    if (st.isDirectory()) {
      const okDir =
        parts.length === 0 ||
        (parts[0] === 'ocirepository' && parts.length <= 3 && (parts.length < 3 || objects.has(`${parts[1]}/${parts[2]}`))) ||
        (parts[0] === '.tmp' && parts.length === 1);
      if (!okDir) problems.push(`unexpected directory ${rel}/`);
      for (const n of readdirSync(abs)) walk(rel ? `${rel}/${n}` : n);
      return;
    }
    const inObject = parts[0] === 'ocirepository' && parts.length === 4 && objects.has(`${parts[1]}/${parts[2]}`);
    const name = parts[parts.length - 1] ?? '';
    if (inObject && st.isFile() && /^sha256:[0-9a-f]{64}\.tar\.gz$/.test(name)) return;
    if (inObject && st.isSymbolicLink() && name === 'latest.tar.gz' && /^sha256:[0-9a-f]{64}\.tar\.gz$/.test(readlinkSync(abs))) return;
    problems.push(`unexpected ${st.isSymbolicLink() ? `symlink (→ ${readlinkSync(abs)})` : st.isFile() ? 'file' : 'entry'} ${rel}`);
  };
  walk('');
  return problems;
}
