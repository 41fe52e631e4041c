// Child processes and temp dirs for integration tests: spawn with a log file, wait until ready
// (failing with the tail of the log), stop, and kill/remove everything on process exit so that a
// failed or interrupted test run leaves no stray processes or directories.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPortOpen, LOOPBACK } from './ports.ts';

// ---------------------------------------------------------------------------------------------
// Exit-time cleanup registry
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
const exitHooks = new Set<() => void>();
let hooksInstalled = false;

function cleanupSync(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      /* best effort */
    }
  }
  exitHooks.clear();
  for (const child of liveChildren) {
    try {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  liveDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupSync();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

/** Runs `fn` synchronously at process exit (or SIGINT/SIGTERM/SIGHUP); returns an unregister function. */
export function onExit(fn: () => void): () => void {
  installHooks();
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

/** A new directory under the OS temp dir, removed at process exit unless removed before. */
export function makeTempDir(prefix = 'osc-test-'): string {
  installHooks();
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

/** Leaves a directory made by makeTempDir in place at exit (a benchmark's KEEP=1). */
export function keepTempDir(dir: string): void {
  liveDirs.delete(dir);
}

/** Removes a directory made by makeTempDir (or any directory) now. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/** The last `lines` lines of a log file ('' when it does not exist). */
export function logTail(file: string, lines = 60): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Running commands to completion
// ---------------------------------------------------------------------------------------------

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a command to completion (no shell). Never throws for a non-zero exit: check `code`. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        liveChildren.delete(child);
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          // spawn failure (ENOENT, ...), not an exit status
          reject(new Error(`${cmd}: ${err.message}`));
          return;
        }
        const code = child.exitCode ?? (err ? 1 : 0);
        resolve({ stdout, stderr, code });
      },
    );
    installHooks();
    liveChildren.add(child);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Like run() but throws (with stderr) on a non-zero exit; returns stdout. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Long-running processes
// ---------------------------------------------------------------------------------------------

/** How to tell that a started process is ready. */
export interface ReadyCheck {
  /** Poll this URL until it answers with one of `okStatus` (default: any status < 500). */
  url?: string;
  okStatus?: number[];
  headers?: Record<string, string>;
  /** PEM CA to trust for an https `url`; without it certificates are not verified (readiness only). */
  caPem?: string;
  /** Client certificate/key (PEM) for an mTLS `url`. */
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Poll until this port on 127.0.0.1 accepts TCP connections. */
  tcpPort?: number;
  /** Any custom check; resolved true means ready. Errors count as "not yet". */
  check?: () => Promise<boolean>;
  /** Overall deadline (default 60 s). */
  timeoutMs?: number;
  /** Poll interval (default 100 ms). */
  intervalMs?: number;
}

export interface StartOptions {
  /** Name used in error messages. */
  name: string;
  cmd: string;
  args: readonly string[];
  /** stdout and stderr are appended to this file. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  ready?: ReadyCheck;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** True until the process has exited. */
  running(): boolean;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Tail of the log file. */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Error thrown when a process fails to become ready; `message` includes the log tail. */
export class StartupError extends Error {
  logFile: string;
  constructor(message: string, logFile: string) {
    super(message);
    this.name = 'StartupError';
    this.logFile = logFile;
  }
}

/** One HTTP(S) GET; resolves with the status code, rejects on connection errors. */
export function probeUrl(
  url: string,
  opts: { headers?: Record<string, string>; caPem?: string; clientCertPem?: string; clientKeyPem?: string; timeoutMs?: number } = {},
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: 'GET',
        headers: opts.headers,
        ...(u.protocol === 'https:' ? (opts.caPem ? { ca: opts.caPem } : { rejectUnauthorized: false }) : {}),
        ...(u.protocol === 'https:' && opts.clientCertPem ? { cert: opts.clientCertPem, key: opts.clientKeyPem } : {}),
        agent: false,
        timeout: opts.timeoutMs ?? 2000,
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Starts a long-running process with stdout/stderr appended to `logFile`, registered for
 * kill-at-exit, and waits for `ready`. On failure (early exit or deadline) the process is killed
 * and a StartupError with the log tail is thrown.
 */
export async function startProcess(opts: StartOptions): Promise<ManagedProcess> {
  installHooks();
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.cmd, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  liveChildren.add(child);
  // Do not keep the test process alive because of a forgotten child: it is killed at exit.
  child.unref();

  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      liveChildren.delete(child);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const proc: ManagedProcess = {
    name: opts.name,
    get pid() {
      return child.pid ?? -1;
    },
    logFile: opts.logFile,
    child,
    running: () => !hasExited,
    exited,
    logTail: (lines?: number) => logTail(opts.logFile, lines),
    async stop(graceMs = 5000): Promise<void> {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!hasExited) child.kill('SIGKILL');
      }, graceMs);
      // Keep this timer referenced: the child is unref'd, so without it a script (not the test
      // runner) could exit while still waiting for the child to stop.
      await exited;
      clearTimeout(timer);
    },
  };

  const ready = opts.ready;
  if (!ready) return proc;
  const deadline = Date.now() + (ready.timeoutMs ?? 60_000);
  const interval = ready.intervalMs ?? 100;
  let lastError = '';
  for (;;) {
    if (hasExited || spawnError) {
      const st = await exited;
      const why = spawnError ? `failed to spawn: ${spawnError.message}` : `exited early (code ${st.code}, signal ${st.signal})`;
      throw new StartupError(`${opts.name} ${why}; log ${opts.logFile}:\n${logTail(opts.logFile)}`, opts.logFile);
    }
    try {
      let ok = true;
      if (ready.tcpPort !== undefined) ok = await isPortOpen(ready.tcpPort, LOOPBACK);
      if (ok && ready.url !== undefined) {
        const status = await probeUrl(ready.url, {
          headers: ready.headers,
          caPem: ready.caPem,
          clientCertPem: ready.clientCertPem,
          clientKeyPem: ready.clientKeyPem,
        });
        ok = ready.okStatus ? ready.okStatus.includes(status) : status > 0 && status < 500;
        if (!ok) lastError = `${ready.url} answered ${status}`;
      }
      if (ok && ready.check) ok = await ready.check();
      if (ok) return proc;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      await proc.stop(1000);
      throw new StartupError(
        `${opts.name} not ready within ${ready.timeoutMs ?? 60_000} ms (${lastError}); log ${opts.logFile}:\n${logTail(opts.logFile)}`,
        opts.logFile,
      );
    }
    await sleep(interval);
  }
}

/** True when a startup failure looks like a lost race for a port. */
export function isAddressInUse(err: unknown): boolean {
  return err instanceof Error && /address already in use|EADDRINUSE|bind: address/i.test(err.message);
}
