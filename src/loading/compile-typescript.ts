/**
 * Running a TypeScript task module without a build step, and without the TypeScript loader in
 * the worker: a short-lived child process compiles the module and the local modules it imports
 * into one JavaScript file beside it (packages stay imports), the worker imports that file, and
 * the file is removed. The worker thus carries no compiler (the loader's hooks thread alone
 * would add some 30 MB to every worker).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigurationError } from '../errors.js';
import { isProcessAlive } from '../process-alive.js';

const COMPILER = fileURLToPath(new URL('./typescript-compiler.js', import.meta.url));

/** A compiled module: where it is, and how to remove it once imported. */
export interface CompiledModule {
  readonly path: string;
  remove(): void;
}

/** The child's exit code when the module's directory is read-only. */
const CANNOT_WRITE = 3;

/**
 * Compiles `entry` (a `.ts`, `.mts` or `.cts` file) to JavaScript beside it: ESM for `.mts`, and
 * for `.ts` in a project whose package.json says `"type": "module"`; CommonJS otherwise, as
 * Node would load a JavaScript file there.
 *
 * Returns null when the module's directory is read-only: load it with the TypeScript loader then.
 *
 * @throws {@link ConfigurationError} with the compiler's message (file, line, what is wrong), or
 *   naming the package to install when the TypeScript loader is missing.
 */
export function compileTypeScript(entry: string): CompiledModule | null {
  const esm = entry.endsWith('.mts') || (!entry.endsWith('.cts') && nearestPackageType(dirname(entry)) === 'module');
  const stem = `.${basename(entry).replace(/\.[mc]?tsx?$/, '')}.celeriac-`;
  removeOrphans(dirname(entry), stem);
  const out = join(dirname(entry), `${stem}${process.pid}.${esm ? 'mjs' : 'cjs'}`);
  const run = spawnSync(process.execPath, [COMPILER, entry, out, esm ? 'esm' : 'cjs'], { encoding: 'utf8', timeout: 60_000 });
  if (run.status === CANNOT_WRITE) return null;
  if (run.status !== 0) {
    rmSync(out, { force: true });
    throw new ConfigurationError((run.stderr || run.error?.message || `the TypeScript compiler exited with ${run.status}`).trim());
  }
  kept.add(out);
  return {
    path: out,
    remove: () => {
      kept.delete(out);
      rmSync(out, { force: true });
    },
  };
}

/** Compiled files not yet removed; removed when the process exits, however it exits. */
const kept = new Set<string>();
process.on('exit', () => {
  for (const path of kept) rmSync(path, { force: true });
});

/** Removes compiled files of `stem` left by processes that died without removing them (SIGKILL). */
function removeOrphans(dir: string, stem: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = name.startsWith(stem) ? Number(name.slice(stem.length).split('.')[0]) : NaN;
    if (Number.isInteger(pid) && pid !== process.pid && !isProcessAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

/** The `type` of the nearest package.json at or above `dir`. */
function nearestPackageType(dir: string): string | undefined {
  for (let current = dir; ; current = dirname(current)) {
    const file = join(current, 'package.json');
    if (existsSync(file)) {
      try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { type?: string }).type;
      } catch {
        return undefined;
      }
    }
    if (dirname(current) === current) return undefined;
  }
}
