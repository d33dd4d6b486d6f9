/**
 * Loading the packages celeriac leaves to the user to install (optional peer dependencies: the
 * Redis and RabbitMQ drivers, the TypeScript loader), with one clear line when one is missing.
 */
import { ConfigurationError } from './errors.js';

/**
 * Runs `load` (an `import()` of `name`); if the package is not installed, throws a
 * {@link ConfigurationError} saying what needs it and the command that installs it.
 */
export async function importOptional<T>(name: string, neededFor: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isMissing(error, name)) throw new ConfigurationError(`${neededFor} needs the ${name} package, which is not installed; run: npm install ${name}`);
    throw error;
  }
}

function isMissing(error: unknown, name: string): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && typeof message === 'string' && message.includes(`'${name}'`);
}
