// A dockerd of our own (Debian's docker.io) for tests that run the image: data and exec roots,
// pidfile and socket in a temp dir, no bridge and no iptables (containers use --network host, so
// they reach the other harness servers on 127.0.0.1). Stopped by PID, containers first.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, onExit, removeTempDir, run, runOk, startProcess, type ManagedProcess, type RunOptions, type RunResult } from './proc.ts';

export const DOCKERD_BIN = process.env['OSC_DOCKERD'] ?? '/usr/sbin/dockerd';
// Debian's client, the same release as the daemon (another `docker` may be first on PATH).
export const DOCKER_BIN = process.env['OSC_DOCKER'] ?? '/usr/bin/docker';

export interface Docker {
  /** unix://… socket of this daemon. */
  host: string;
  proc: ManagedProcess;
  dir: string;
  /** Runs the docker client against this daemon. Never throws on exit code. */
  docker(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Like docker() but throws unless the exit code is 0; returns stdout. */
  dockerOk(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Removes every container, stops the daemon (SIGTERM, by PID) and deletes its directories. */
  stop(): Promise<void>;
}

export async function startDocker(): Promise<Docker> {
  // Under the OS temp dir: socket paths must stay short (sun_path is 108 bytes).
  const dir = makeTempDir('osc-docker-');
  const host = `unix://${path.join(dir, 'docker.sock')}`;
  const docker = (args: readonly string[], opts: RunOptions = {}): Promise<RunResult> => run(DOCKER_BIN, ['-H', host, ...args], opts);
  const dockerOk = (args: readonly string[], opts: RunOptions = {}): Promise<string> => runOk(DOCKER_BIN, ['-H', host, ...args], opts);
  const proc = await startProcess({
    name: 'dockerd',
    cmd: DOCKERD_BIN,
    args: [
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'dockerd.pid'),
      '-H', host,
      '--bridge=none', '--iptables=false', '--ip-masq=false',
    ],
    logFile: path.join(dir, 'dockerd.log'),
    ready: { check: async () => (await docker(['version'], { timeoutMs: 5000 })).code === 0, timeoutMs: 60_000, intervalMs: 200 },
  });
  // If the test process dies first, no container may outlive it: remove them, then let dockerd
  // stop (and stop its containerd) before the harness kills what is left.
  const unregister = onExit(() => {
    removeContainersSync(host);
    try {
      process.kill(proc.pid, 'SIGTERM');
      spawnSync('sh', ['-c', `while kill -0 ${proc.pid} 2>/dev/null; do sleep 0.1; done`], { timeout: 15_000 });
    } catch {
      /* already gone */
    }
    unmountUnder(dir); // the harness then removes the directory
  });
  return {
    host,
    proc,
    dir,
    docker,
    dockerOk,
    async stop(): Promise<void> {
      const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker(['rm', '-f', ...ids]);
      await proc.stop(30_000);
      unregister();
      unmountUnder(dir);
      removeTempDir(dir);
    },
  };
}

function removeContainersSync(host: string): void {
  try {
    const ids = execFileSync(DOCKER_BIN, ['-H', host, 'ps', '-aq'], { encoding: 'utf8', timeout: 10_000 }).split('\n').filter(Boolean);
    if (ids.length) execFileSync(DOCKER_BIN, ['-H', host, 'rm', '-f', ...ids], { timeout: 20_000, stdio: 'ignore' });
  } catch {
    /* best effort */
  }
}

/** dockerd leaves its network namespace bind-mounted in the exec root (and one that died
 * uncleanly, overlay mounts): release them before the directory is deleted. */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir + '/'))
    .sort()
    .reverse();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}
