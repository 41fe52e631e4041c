#!/usr/bin/env node
// oci-source-controller: one executable, four subcommands.
import { UsageError } from './cli/args.ts';

const usage = `Usage: oci-source-controller <command> [flags]

Commands:
  run      run the controller (kubeconfig or in-cluster config)
  pull     resolve, pull and store one artifact as the controller does
  verify   verify an artifact's Notation or Cosign signatures as the controller does
  demo     start a local registry and API server, and show the controller at work

Run 'oci-source-controller <command> --help' for the command's flags.
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return (await import('./cli/run.ts')).runCommand(rest);
    case 'pull':
      return (await import('./cli/pull.ts')).pullCommand(rest);
    case 'verify':
      return (await import('./cli/verify.ts')).verifyCommand(rest);
    case 'demo':
      return (await import('./cli/demo.ts')).demoCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
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
