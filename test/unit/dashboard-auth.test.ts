/**
 * Who gets in, and which POSTs count: loopback addresses, the refusal to listen beyond loopback
 * without auth, basic auth and bearer tokens, sessions from the login form, the CSRF token bound
 * to a session, Origin checks, and the Host check that keeps DNS rebinding out of an open
 * loopback dashboard.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { assertSafeListen, authFromOptions, Guard, isLoopback } from '../../src/dashboard/auth.js';
import { parseAddress } from '../../src/dashboard/http.js';

function request(headers: Record<string, string>): IncomingMessage {
  return { headers: Object.fromEntries(Object.entries(headers).map(([key, value]) => [key.toLowerCase(), value])) } as IncomingMessage;
}

const basic = (credentials: string): string => `Basic ${Buffer.from(credentials).toString('base64')}`;
const TOKEN = 'a-token-of-twenty-four-ch';

describe('dashboard auth', () => {
  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', 'app.localhost']) expect(isLoopback(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.org', '192.168.1.2', 'localhost.example.org']) expect(isLoopback(host), host).toBe(false);
  });

  it('refuses to listen beyond loopback without auth, in one line that says what to do', () => {
    expect(() => assertSafeListen('127.0.0.1', {})).not.toThrow();
    expect(() => assertSafeListen('0.0.0.0', {})).toThrow(/^refusing to listen on 0\.0\.0\.0 without auth: .* pass --auth user:pass or --token TOKEN .*$/);
    expect(() => assertSafeListen('0.0.0.0', { basic: 'a:b' })).not.toThrow();
    expect(() => assertSafeListen('::', { token: TOKEN })).not.toThrow();
  });

  it('reads settings from options or the environment, and refuses weak ones', () => {
    expect(authFromOptions({}, { CELERIAC_DASHBOARD_AUTH: 'admin:pw', CELERIAC_DASHBOARD_TOKEN: TOKEN })).toEqual({ basic: 'admin:pw', token: TOKEN });
    expect(authFromOptions({ auth: 'x:y' }, { CELERIAC_DASHBOARD_AUTH: 'admin:pw' })).toEqual({ basic: 'x:y', token: undefined });
    expect(() => authFromOptions({ auth: 'nopassword' }, {})).toThrow(/user:password/);
    expect(() => authFromOptions({ auth: 'user:' }, {})).toThrow(/user:password/);
    expect(() => authFromOptions({ token: 'short' }, {})).toThrow(/at least 16/);
  });

  it('lets in basic auth and bearer tokens, and nothing else', () => {
    const guard = new Guard({ basic: 'admin:s3cret', token: TOKEN });
    expect(guard.check(request({}))).toMatchObject({ ok: false, status: 401, headers: { 'WWW-Authenticate': expect.stringContaining('Basic') } });
    expect(guard.check(request({ authorization: basic('admin:s3cret') })).ok).toBe(true);
    expect(guard.check(request({ authorization: basic('admin:wrong') })).ok).toBe(false);
    expect(guard.check(request({ authorization: `Bearer ${TOKEN}` })).ok).toBe(true);
    expect(guard.check(request({ authorization: `Bearer ${TOKEN}x` })).ok).toBe(false);
    expect(guard.check(request({ authorization: `Basic ${TOKEN}` })).ok).toBe(false);
  });

  it('opens a session for the right token, with a CSRF token of its own', () => {
    const guard = new Guard({ token: TOKEN });
    expect(guard.login('wrong')).toBeUndefined();
    const cookie = guard.login(TOKEN)!;
    expect(cookie).toMatch(/^celeriac_session=[\w-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    const session = request({ cookie: `other=1; ${cookie.split(';')[0]}`, host: 'dash:5555' });
    expect(guard.check(session).ok).toBe(true);
    const csrf = guard.csrfFor(session);
    expect(csrf).not.toBe(guard.csrfFor(request({ host: 'dash:5555' })));
    expect(guard.checkPost(session, new URLSearchParams({ _csrf: csrf }))).toBeUndefined();
    expect(guard.checkPost(session, new URLSearchParams({ _csrf: guard.csrfFor(request({})) }))).toMatch(/form token/);
    guard.logout(session);
    expect(guard.check(session).ok).toBe(false);
  });

  it('refuses POSTs without the form token or from another origin', () => {
    const guard = new Guard({ basic: 'a:b' });
    const page = request({ host: 'dash:5555', authorization: basic('a:b') });
    const csrf = guard.csrfFor(page);
    const post = (headers: Record<string, string>, token = csrf): string | undefined => guard.checkPost(request({ host: 'dash:5555', ...headers }), new URLSearchParams({ _csrf: token }));
    expect(post({})).toBeUndefined(); // curl: no Origin, token present
    expect(post({ origin: 'http://dash:5555' })).toBeUndefined();
    expect(post({}, '')).toMatch(/form token/);
    expect(post({ origin: 'http://evil.example' })).toMatch(/cross-site/);
    expect(post({ referer: 'http://evil.example/page' })).toMatch(/cross-site/);
    expect(post({ origin: 'null' })).toMatch(/cross-site/);
    expect(post({ 'sec-fetch-site': 'cross-site', origin: 'http://dash:5555' })).toMatch(/cross-site/);
    expect(guard.checkPost(request({ host: 'dash:5555' }), new URLSearchParams({ _csrf: guard.csrfFor(page, 'login') }))).toMatch(/form token/);
  });

  it('without auth, answers only to a loopback Host (no DNS rebinding)', () => {
    const guard = new Guard({});
    expect(guard.check(request({ host: '127.0.0.1:5555' })).ok).toBe(true);
    expect(guard.check(request({ host: 'localhost:5555' })).ok).toBe(true);
    expect(guard.check(request({ host: '[::1]:5555' })).ok).toBe(true);
    expect(guard.check(request({ host: 'attacker.example:5555' }))).toMatchObject({ ok: false, status: 421 });
  });

  it('reads --dashboard and --metrics-port addresses', () => {
    const defaults = { host: '127.0.0.1', port: 5555 };
    expect(parseAddress('8080', defaults)).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseAddress('0.0.0.0:9000', defaults)).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseAddress('[::1]:9000', defaults)).toEqual({ host: '::1', port: 9000 });
    expect(parseAddress('example.local', defaults)).toEqual({ host: 'example.local', port: 5555 });
    expect(() => parseAddress('host:99999', defaults)).toThrow(/port/);
  });
});
