/**
 * TLS settings from a `rediss://` or `amqps://` URL, under the option names Celery uses:
 * `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` (file paths) and `ssl_cert_reqs`
 * (`required`, the default, or `none` to skip verifying the server's certificate).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { ConfigurationError } from './errors.js';
import type { ParsedUrl } from './url.js';

const FILES = { ssl_ca_certs: 'ca', ssl_certfile: 'cert', ssl_keyfile: 'key' } as const;

export function tlsOptionsOf(url: ParsedUrl): ConnectionOptions {
  const options: ConnectionOptions = {};
  for (const [name, field] of Object.entries(FILES)) {
    const file = url.options.get(name);
    if (file === null) continue;
    try {
      options[field] = readFileSync(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new ConfigurationError(`cannot read ${name}=${file} named in ${url.display}: ${reason}`);
    }
  }
  const requirement = (url.options.get('ssl_cert_reqs') ?? 'required').toLowerCase().replace(/^cert_/, '');
  if (!['required', 'optional', 'none'].includes(requirement)) {
    throw new ConfigurationError(`URL option ssl_cert_reqs=${url.options.get('ssl_cert_reqs')} in ${url.display}: use required, optional or none`);
  }
  if (requirement === 'none') options.rejectUnauthorized = false;
  // SNI carries host names only; an IP address is checked against the certificate as it is.
  if (url.url.hostname && !isIP(url.url.hostname)) options.servername = url.url.hostname;
  return options;
}
