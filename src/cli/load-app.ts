/** Finding the app: load a user's module (TypeScript without a build step) or make one from URLs. */
import { Celeriac } from '../app.js';
import { importAppModule } from '../loading/app-module.js';

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
  const app = await importAppModule(options.app);
  app.configure({ broker: options.broker, backend: options.backend });
  return app;
}
