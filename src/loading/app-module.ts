/**
 * Loading the module that defines an app (TypeScript without a build step): for the CLI's `-A`,
 * and for the threads and child processes of a worker's pools.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Celeriac } from '../app.js';
import { ConfigurationError } from '../errors.js';
import { importOptional } from '../optional-package.js';
import { compileTypeScript } from './compile-typescript.js';

/** True for a module name TypeScript must compile (`.ts`, `.mts`, `.cts`, `.tsx`). */
export function isTypeScript(path: string): boolean {
  return /\.[mc]?tsx?$/.test(path);
}

/**
 * Imports the module at `specifier` (a path, or a file URL) and returns the Celeriac app it
 * exports (`default`, `app`, or the only exported app).
 *
 * @throws {@link ConfigurationError} when the file is missing, does not compile, or exports no
 *   single app.
 */
export async function importAppModule(specifier: string): Promise<Celeriac> {
  const path = specifier.startsWith('file:') ? fileURLToPath(specifier) : resolve(specifier);
  if (!existsSync(path)) throw new ConfigurationError(`app module ${specifier} not found (looked at ${path})`);
  const exports = isTypeScript(path) ? await importCompiled(path) : ((await import(pathToFileURL(path).href)) as Record<string, unknown>);
  return findApp(exports, specifier);
}

/**
 * Imports a TypeScript module through its compiled JavaScript, then removes that file; where it
 * cannot be written (a read-only directory), through the TypeScript loader in this process.
 */
async function importCompiled(path: string): Promise<Record<string, unknown>> {
  const compiled = compileTypeScript(path);
  if (!compiled) {
    await registerTypeScriptLoader(path);
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  }
  try {
    return (await import(pathToFileURL(compiled.path).href)) as Record<string, unknown>;
  } finally {
    compiled.remove();
  }
}

/** tsx's hooks, both: in a CommonJS project a `.ts` file loads as CommonJS, its imports as requires. */
async function registerTypeScriptLoader(path: string): Promise<void> {
  const neededFor = `loading the TypeScript module ${path}`;
  const [{ register: registerEsm }, { register: registerCjs }] = await Promise.all([
    importOptional('tsx', neededFor, () => import('tsx/esm/api')),
    importOptional('tsx', neededFor, () => import('tsx/cjs/api')),
  ]);
  registerCjs();
  registerEsm();
}

function findApp(namespace: Record<string, unknown>, name: string): Celeriac {
  // A CommonJS module's exports arrive as the namespace's default.
  const commonJs = namespace['default'];
  const exports = isApp(commonJs) || typeof commonJs !== 'object' || commonJs === null ? namespace : { ...namespace, ...(commonJs as Record<string, unknown>) };
  for (const key of ['default', 'app']) {
    if (isApp(exports[key])) return exports[key];
  }
  const apps = [...new Set(Object.values(exports).filter(isApp))];
  if (apps.length === 1) return apps[0]!;
  throw new ConfigurationError(
    apps.length === 0
      ? `${name} exports no Celeriac app; add \`export default app\` (or \`export const app = new Celeriac(...)\`)`
      : `${name} exports ${apps.length} Celeriac apps; export the one to use as \`default\` or \`app\``,
  );
}

// Checked by shape, not instanceof: the module may import celeriac through another path.
function isApp(value: unknown): value is Celeriac {
  return typeof value === 'object' && value !== null && value.constructor?.name === 'Celeriac' && 'tasks' in value && 'worker' in value;
}
