/** Running `celeriac dashboard` in a child process, and Debian's Chromium through playwright-core. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI, ROOT } from './cli.js';

/** Where screenshots go: test-output/ (gitignored), kept by CI as artifacts. */
export const SCREENSHOTS = join(ROOT, 'test-output', 'dashboard');

/** A process of the real CLI whose log prints the URL it listens on. */
export interface ServingProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT`, read from the log. */
  url: string;
  log: () => string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * Starts the CLI with `args` and resolves once its log shows `pattern` (whose first group is
 * the URL). Rejects with the log when it exits first or stays silent.
 */
export function startServing(args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<ServingProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms; log:\n${output}`)), timeoutMs);
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = pattern.exec(output);
      if (!match) return;
      clearTimeout(timer);
      resolve({
        child,
        url: match[1]!,
        log: () => output,
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(killer);
        },
      });
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${String(pattern)}; log:\n${output}`));
    });
  });
}

/** `celeriac dashboard --port 0 ...`, resolved once it listens. */
export function startDashboardProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServingProcess> {
  return startServing(['dashboard', '--port', '0', ...args], /celeriac dashboard: (http:\/\/\S+) /, env);
}

/** Headless Chromium from Debian's package (root needs --no-sandbox). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Saves a full-page screenshot as test-output/dashboard/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** `Authorization: Basic ...` for `user:pass`. */
export function basicAuth(credentials: string): string {
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}
