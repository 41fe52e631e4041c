// `oci-source-controller demo`: runs hack/demo.ts from a source checkout (`make demo`). The demo
// drives a local registry and API server with the test harness and signers, which are not part
// of the image; the specifier is computed so that the production build never includes them.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const demoUsage = `Usage: oci-source-controller demo

Runs a local registry and API server (loopback only) and shows the whole path: Notation- and
cosign-signed artifacts verified, served, published as Flux ExternalArtifacts and fetched as Flux
does; then a tampered tag rejected while the ExternalArtifacts keep the last verified revision.
Runs from a source checkout (make demo).
`;

export async function demoCommand(_argv: string[]): Promise<number> {
  const script = path.resolve(import.meta.dirname, '../../hack/demo.ts');
  if (!existsSync(script)) {
    process.stderr.write('the demo runs from a source checkout (make demo); this build does not include it\n');
    return 2;
  }
  const demo = (await import(pathToFileURL(script).href)) as { runDemo(): Promise<number> };
  return demo.runDemo();
}
