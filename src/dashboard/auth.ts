/**
 * Who may use the dashboard, and how a control action proves it came from the dashboard's own
 * page:
 *
 * - Basic auth (`--auth user:pass`) or a token (`--token`, sent as `Authorization: Bearer`, or
 *   typed once into the login page, which sets a session cookie). Required whenever the server
 *   listens beyond loopback: {@link assertSafeListen} refuses to start otherwise.
 * - Without auth, on loopback only, requests must name a loopback host in `Host`, so a web page
 *   elsewhere cannot reach the dashboard by pointing a DNS name at 127.0.0.1 (DNS rebinding).
 * - Every POST carries the page's CSRF token, and a browser's `Origin` (or `Referer`) must be
 *   the dashboard's own; the session cookie is `SameSite=Strict`. GET never changes anything.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { ConfigurationError } from '../errors.js';

/** How the dashboard is protected. Neither set: open, and loopback only. */
export interface AuthSettings {
  /** `user:pass` for basic auth. */
  basic?: string | undefined;
  /** A bearer token (also accepted on the login page). */
  token?: string | undefined;
}

/** The session cookie's name. */
export const SESSION_COOKIE = 'celeriac_session';
/** Sessions kept at once; the oldest is forgotten first. */
const MAX_SESSIONS = 1_000;

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare.startsWith('::ffff:127.');
  return false;
}

/** Reads the settings from options, falling back to `CELERIAC_DASHBOARD_AUTH` and `CELERIAC_DASHBOARD_TOKEN`. */
export function authFromOptions(options: { auth?: string | undefined; token?: string | undefined }, env: NodeJS.ProcessEnv = process.env): AuthSettings {
  const basic = options.auth ?? (env['CELERIAC_DASHBOARD_AUTH'] || undefined);
  const token = options.token ?? (env['CELERIAC_DASHBOARD_TOKEN'] || undefined);
  if (basic !== undefined) {
    const colon = basic.indexOf(':');
    if (colon < 1 || colon === basic.length - 1) throw new ConfigurationError('--auth takes user:password (both non-empty), e.g. --auth admin:s3cret');
  }
  if (token !== undefined && token.length < 16) throw new ConfigurationError('--token must be at least 16 characters; make one with: openssl rand -hex 24');
  return { basic, token };
}

/** Refuses to listen beyond loopback without auth, in one line that says what to do. */
export function assertSafeListen(host: string, auth: AuthSettings): void {
  if (isLoopback(host) || auth.basic !== undefined || auth.token !== undefined) return;
  throw new ConfigurationError(
    `refusing to listen on ${host} without auth: anyone who can reach it could revoke tasks and shut workers down; pass --auth user:pass or --token TOKEN (or CELERIAC_DASHBOARD_AUTH / CELERIAC_DASHBOARD_TOKEN), or listen on 127.0.0.1`,
  );
}

/** The outcome of checking a request. */
export type AuthOutcome = { ok: true } | { ok: false; status: 401 | 403 | 421; reason: string; headers: Record<string, string> };

export class Guard {
  /** What the CSRF tokens are derived from; never sent. */
  readonly #secret = randomBytes(32);
  readonly #basic: Buffer | undefined;
  readonly #token: Buffer | undefined;
  /** Sessions by id, in creation order. */
  readonly #sessions = new Set<string>();

  constructor(readonly settings: AuthSettings) {
    this.#basic = settings.basic === undefined ? undefined : digest(settings.basic);
    this.#token = settings.token === undefined ? undefined : digest(settings.token);
  }

  /** True when a credential is needed. */
  get required(): boolean {
    return this.#basic !== undefined || this.#token !== undefined;
  }

  /** True when the login page can let someone in (a token is set). */
  get acceptsLogin(): boolean {
    return this.#token !== undefined;
  }

  /** Whether `request` may be served. */
  check(request: IncomingMessage): AuthOutcome {
    if (!this.required) {
      const host = hostOf(request);
      if (host !== undefined && !isLoopback(host)) return { ok: false, status: 421, reason: `this dashboard answers only to localhost, not to ${host}`, headers: {} };
      return { ok: true };
    }
    const header = request.headers.authorization ?? '';
    const [scheme = '', credentials = ''] = header.split(/\s+/, 2);
    if (this.#basic && scheme.toLowerCase() === 'basic' && same(digest(Buffer.from(credentials, 'base64').toString('utf8')), this.#basic)) return { ok: true };
    if (this.#token && scheme.toLowerCase() === 'bearer' && same(digest(credentials), this.#token)) return { ok: true };
    const session = cookie(request, SESSION_COOKIE);
    if (session !== undefined && this.#sessions.has(session)) return { ok: true };
    return { ok: false, status: 401, reason: 'authentication required', headers: this.#basic ? { 'WWW-Authenticate': 'Basic realm="celeriac", charset="UTF-8"' } : {} };
  }

  /**
   * The CSRF token the forms of a page served to `request` carry: bound to its session when it
   * has one, and a separate one for the login form (which anyone may load).
   */
  csrfFor(request: IncomingMessage, purpose: 'action' | 'login' = 'action'): string {
    const session = purpose === 'login' ? undefined : cookie(request, SESSION_COOKIE);
    const scope = purpose === 'login' ? 'login' : session !== undefined && this.#sessions.has(session) ? `session:${session}` : 'page';
    return createHmac('sha256', this.#secret).update(scope).digest('base64url');
  }

  /**
   * Checks a POST: the form's CSRF token, and that a browser sent it from the dashboard's own
   * pages (`Origin`, else `Referer`; `Sec-Fetch-Site` when present). Returns why it is refused,
   * or undefined.
   */
  checkPost(request: IncomingMessage, form: URLSearchParams, purpose: 'action' | 'login' = 'action'): string | undefined {
    const site = request.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') return 'cross-site request refused';
    const origin = request.headers.origin ?? refererOrigin(request.headers.referer);
    if (origin !== undefined && origin !== 'null') {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        return 'bad Origin header';
      }
      if (originHost !== request.headers.host) return `cross-site request refused (from ${origin})`;
    } else if (origin === 'null') {
      return 'cross-site request refused (opaque origin)';
    }
    const token = form.get('_csrf') ?? '';
    if (!same(digest(token), digest(this.csrfFor(request, purpose)))) return 'missing or stale form token; reload the page and try again';
    return undefined;
  }

  /** Lets in whoever typed the right token; returns the session cookie to set, or undefined. */
  login(token: string): string | undefined {
    if (!this.#token || !same(digest(token), this.#token)) return undefined;
    const session = randomBytes(24).toString('base64url');
    this.#sessions.add(session);
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.values().next().value!);
    return `${SESSION_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict`;
  }

  /** Forgets the request's session; returns the cookie that clears it. */
  logout(request: IncomingMessage): string {
    const session = cookie(request, SESSION_COOKIE);
    if (session !== undefined) this.#sessions.delete(session);
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The host name of the `Host` header, without its port. */
function hostOf(request: IncomingMessage): string | undefined {
  const host = request.headers.host;
  if (!host) return undefined;
  const match = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host);
  return match ? match[1] : host;
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return 'null';
  }
}

function cookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}
