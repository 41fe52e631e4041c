#!/usr/bin/env node
// oci-source-controller: one executable, four subcommands.
import module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './cli/args.ts';

const usage = `Usage: oci-source-controller <command> [flags]

Commands:
  run      run the controller (kubeconfig or in-cluster config)
  pull     resolve, pull and store one artifact as the controller does
  verify   verify an artifact's Notation or Cosign signatures as the controller does
  demo     start a local registry and API server, and show the controller at work

Run 'oci-source-controller <command> --help' for the command's flags.
`;

interface Command {
  usage: string;
  run(argv: string[]): Promise<number>;
}

// Loaded on demand: `pull` and `verify` do not pay for the controller's modules.
const commands: Record<string, () => Promise<Command>> = {
  run: async () => import('./cli/run.ts').then((m) => ({ usage: m.runUsage, run: m.runCommand })),
  pull: async () => import('./cli/pull.ts').then((m) => ({ usage: m.pullUsage, run: m.pullCommand })),
  verify: async () => import('./cli/verify.ts').then((m) => ({ usage: m.verifyUsage, run: m.verifyCommand })),
  demo: async () => import('./cli/demo.ts').then((m) => ({ usage: m.demoUsage, run: m.demoCommand })),
};

/**
 * Short-lived commands keep V8's compiled code on disk between runs (Node's compile cache), so a
 * second `pull` or `verify` skips most of the compiling. The directory is the user's own (a shared
 * /tmp would let another user plant code); where it cannot be written, e.g. on a read-only root
 * file system, Node leaves the cache off and nothing else changes. `run` does without: the cache
 * would stay in memory for the life of the controller and it starts once.
 */
function enableCompileCache(): void {
  const home = process.env.XDG_CACHE_HOME || (os.homedir() ? path.join(os.homedir(), '.cache') : '');
  if (home) module.enableCompileCache(path.join(home, 'oci-source-controller', 'compile-cache'));
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(usage);
    return cmd === undefined ? 2 : 0;
  }
  const load = commands[cmd];
  if (!load) throw new UsageError(`unknown command '${cmd}'`);
  if (cmd !== 'run') enableCompileCache();
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n(see --help)\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 2;
    }
  },
);
