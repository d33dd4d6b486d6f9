/** Finding the app: load a user's module (TypeScript without a build step) or make one from URLs. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Celeriac } from '../app.js';
import { ConfigurationError } from '../errors.js';
import { importOptional } from '../optional-package.js';
import { compileTypeScript } from './compile-typescript.js';

/** Options every command takes to find its app. */
export interface AppOptions {
  app?: string;
  broker?: string;
  backend?: string;
}

/**
 * Imports the module `-A` names and returns the Celeriac app it exports (`default`, `app`, or
 * the only exported app). Without `-A`, returns an app on `--broker`/`--backend` or defaults.
 */
export async function loadApp(options: AppOptions): Promise<Celeriac> {
  if (!options.app) {
    const app = new Celeriac();
    app.configure({ broker: options.broker, backend: options.backend });
    return app;
  }
  const path = resolve(options.app);
  if (!existsSync(path)) throw new ConfigurationError(`app module ${options.app} not found (looked at ${path})`);
  const exports = /\.[mc]?tsx?$/.test(path) ? await importCompiled(path) : ((await import(pathToFileURL(path).href)) as Record<string, unknown>);
  const app = findApp(exports, options.app);
  app.configure({ broker: options.broker, backend: options.backend });
  return app;
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
