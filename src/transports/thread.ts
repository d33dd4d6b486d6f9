/**
 * Starting a worker thread whose entry is a module of this package, named by its path inside
 * `dist/` (or `src/`), e.g. `transports/redis/lease-keeper-thread.js`. As src/cli/compile-typescript.ts
 * finds its child script, the file is looked for relative to this module's own URL:
 *
 * - in the built package, the `.js` is there;
 * - when the sources themselves run (under vitest or tsx), only the `.ts` is: the thread runs the
 *   built `.js` in `dist/` beside `src/` if that build is newer than every source file (it was
 *   built from these sources; a thread starts in some 30 ms), or else loads the `.ts` through
 *   tsx's `tsImport`, from the tsx the sources run with (some 140 ms);
 * - when this module was bundled into another file (a task module compiled with the package's
 *   sources inlined, or an application bundle), neither is beside it: the thread module of the
 *   installed `celeriac` package is used, found from the bundle's place or the working directory.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { ConfigurationError } from '../errors.js';

/**
 * Starts the thread module at `path` (relative to the package's `dist/`, ending in `.js`).
 *
 * @throws {@link ConfigurationError} when the module is nowhere to be found.
 */
export function startThread(path: string, options: WorkerOptions = {}): Worker {
  // A CommonJS bundle has no import.meta.url.
  const here = typeof import.meta.url === 'string' ? fileURLToPath(import.meta.url) : undefined;
  if (here) {
    const beside = join(dirname(here), '..', path);
    if (existsSync(beside)) return new Worker(beside, options);
    const source = beside.replace(/\.js$/, '.ts');
    if (existsSync(source)) {
      const built = freshBuild(join(dirname(here), '..'), path);
      return built ? new Worker(built, options) : startTypeScript(source, options);
    }
  }
  const installed = installedModule(path, [...(here ? [here] : []), join(process.cwd(), 'package.json')]);
  if (installed) return new Worker(installed, options);
  throw new ConfigurationError(
    `celeriac's thread module ${path} is neither beside ${here ?? 'this bundle'} nor in an installed celeriac package; ` +
      'when celeriac is bundled into another file, install the celeriac package beside it (npm install celeriac)',
  );
}

/**
 * The built `dist/<path>` beside the source tree `sources` (a `src/` folder), when it is newer
 * than every `.ts` file there: built from these very sources.
 */
function freshBuild(sources: string, path: string): string | undefined {
  const built = join(sources, '..', 'dist', path);
  let builtAt: number;
  try {
    builtAt = statSync(built).mtimeMs;
  } catch {
    return undefined;
  }
  for (const file of readdirSync(sources, { recursive: true, encoding: 'utf8' })) {
    if (file.endsWith('.ts') && statSync(join(sources, file)).mtimeMs > builtAt) return undefined;
  }
  return built;
}

/** Runs a TypeScript thread module through tsx's ESM API, imported from an eval'd CommonJS script. */
function startTypeScript(source: string, options: WorkerOptions): Worker {
  const href = pathToFileURL(source).href;
  const api = pathToFileURL(join(dirname(createRequire(source).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(href)}, ${JSON.stringify(href)}))`;
  return new Worker(code, { ...options, eval: true });
}

/** The thread module in the `dist/` of the celeriac package resolved from one of `from`, if any. */
function installedModule(path: string, from: readonly string[]): string | undefined {
  for (const place of from) {
    try {
      const file = join(dirname(createRequire(place).resolve('celeriac')), path);
      if (existsSync(file)) return file;
    } catch {
      // not resolvable from there
    }
  }
  return undefined;
}
