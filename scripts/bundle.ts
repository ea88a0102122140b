/**
 * Bundles entry points the way they are deployed: one self-contained ESM file each, for
 * Node 24, with the AWS SDK and every other dependency inside (Lambda's built-in SDK version
 * is not ours to choose). Used by `npm run package` and by the bench, so the bench measures
 * what runs in Lambda rather than TypeScript stripped at load time.
 */
import { build } from 'esbuild';

export async function bundle(entryPoints: Record<string, string>, outdir: string): Promise<void> {
  await build({
    entryPoints,
    outdir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outExtension: { '.js': '.mjs' },
    sourcemap: 'linked',
    sourcesContent: false,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
    // Some CommonJS dependencies call require(); ESM output needs one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
}
