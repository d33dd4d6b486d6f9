/** Finding the app: load a user's module (TypeScript without a build step) or make one from URLs. */
import { importOptional } from '../optional-package.js';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Celeriac } from '../app.js';
import { ConfigurationError } from '../errors.js';

/** Options every command takes to find its app. */
export interface AppOptions {
  app?: string;
  broker?: string;
  backend?: string;
}

let typescriptLoaderRegistered = false;

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
  if (/\.[mc]?tsx?$/.test(path) && !typescriptLoaderRegistered) {
    // Both hooks: in a CommonJS project (npm's default) a `.ts` file is loaded as CommonJS, and
    // its `import ... from 'celeriac'` becomes a require.
    const neededFor = `loading the TypeScript module ${options.app}`;
    const [{ register: registerEsm }, { register: registerCjs }] = await Promise.all([
      importOptional('tsx', neededFor, () => import('tsx/esm/api')),
      importOptional('tsx', neededFor, () => import('tsx/cjs/api')),
    ]);
    registerCjs();
    registerEsm();
    typescriptLoaderRegistered = true;
  }
  const exports = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const app = findApp(exports, options.app);
  app.configure({ broker: options.broker, backend: options.backend });
  return app;
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
