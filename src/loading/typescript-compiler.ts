/**
 * The child process of {@link compileTypeScript}: `node typescript-compiler.js ENTRY OUT esm|cjs`.
 * Exits 3 when it may not write beside the module, 2 when tsx is missing, 1 on a compile error.
 * Bundles the entry with the local modules it imports (packages stay imports), with an inline
 * source map so stack traces name the TypeScript lines. Uses the esbuild that tsx brings.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [entry, out, format] = process.argv.slice(2) as [string, string, 'esm' | 'cjs'];

interface Esbuild {
  buildSync(options: Record<string, unknown>): unknown;
}

function loadEsbuild(): Esbuild {
  const require = createRequire(import.meta.url);
  let tsx: string;
  try {
    tsx = require.resolve('tsx/package.json', { paths: [process.cwd(), entry] });
  } catch {
    process.stderr.write(`loading the TypeScript module ${entry} needs the tsx package, which is not installed; run: npm install tsx\n`);
    process.exit(2);
  }
  return createRequire(tsx)('esbuild') as Esbuild;
}

let contents: Uint8Array;
try {
  const result = loadEsbuild().buildSync({
    entryPoints: [entry],
    outfile: out,
    write: false,
    bundle: true,
    packages: 'external',
    // Inside celeriac's own repository 'celeriac' resolves to this package itself, which esbuild
    // would then inline: one copy of the library must serve the module and the worker.
    external: ['celeriac', 'celeriac/*'],
    platform: 'node',
    target: 'node20',
    format,
    sourcemap: 'inline',
    logLevel: 'silent',
  }) as { outputFiles: Array<{ contents: Uint8Array }> };
  contents = result.outputFiles[0]!.contents;
} catch (error) {
  const { errors } = error as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } | null }> };
  const lines = errors?.map(({ text, location }) => (location ? `${location.file}:${location.line}:${location.column}: ${text}` : text)) ?? [String(error)];
  process.stderr.write(`cannot compile ${entry}: ${lines.join('; ')}\n`);
  process.exit(1);
}
try {
  writeFileSync(out, contents);
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') process.exit(3);
  throw error;
}
