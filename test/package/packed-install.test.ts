/**
 * celeriac as users get it: the packed tarball installed into a project of its own, outside this
 * repository. For each kind of project (npm's default CommonJS, and ESM) and each kind of task
 * module (.ts, .mts, .js, .mjs), `celeriac worker -A` runs as a separate process and a client
 * script of that project (`require` in CommonJS, `import` in ESM) calls a task through it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startWorkerProcess } from '../helpers/cli.js';

const ESM_TASKS = `import { Celeriac } from 'celeriac';
export const app = new Celeriac();
export const add = app.task('tasks.add', (ctx, a: number, b: number) => a + b);
export default app;
`;
const CJS_TASKS = `const { Celeriac } = require('celeriac');
const app = new Celeriac();
app.task('tasks.add', (ctx, a, b) => a + b);
module.exports = app;
`;
const ESM_CLIENT = `import { Celeriac } from 'celeriac';
const app = new Celeriac();
console.log(await app.sendTask('tasks.add', [2, 3]).get({ timeout: 20 }));
await app.close();
`;
const CJS_CLIENT = `const { Celeriac } = require('celeriac');
const app = new Celeriac();
app.sendTask('tasks.add', [2, 3]).get({ timeout: 20 }).then(async (sum) => { console.log(sum); await app.close(); });
`;

/** A project kind: its package.json `type`, its task module, and its client script. */
const PROJECTS = [
  { name: 'commonjs-ts', type: 'commonjs', tasks: ['tasks.ts', ESM_TASKS], client: ['client.js', CJS_CLIENT] },
  { name: 'commonjs-mts', type: 'commonjs', tasks: ['tasks.mts', ESM_TASKS], client: ['client.js', CJS_CLIENT] },
  { name: 'commonjs-js', type: 'commonjs', tasks: ['tasks.js', CJS_TASKS], client: ['client.mjs', ESM_CLIENT] },
  { name: 'module-ts', type: 'module', tasks: ['tasks.ts', ESM_TASKS], client: ['client.js', ESM_CLIENT] },
  { name: 'module-js', type: 'module', tasks: ['tasks.js', ESM_TASKS.replace(/: number/g, '')], client: ['client.cjs', CJS_CLIENT] },
  { name: 'module-mjs', type: 'module', tasks: ['tasks.mjs', ESM_TASKS.replace(/: number/g, '')], client: ['client.js', ESM_CLIENT] },
] as const;

describe('the packed package, installed into projects of their own', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'celeriac-install-'));
    execFileSync('npm', ['pack', '--pack-destination', root, '--silent'], { cwd: ROOT, stdio: 'pipe' });
    const tarball = readdirSync(root).find((file) => file.endsWith('.tgz'))!;
    // One install shared by every project below it: Node resolves packages upward, while each
    // project's own package.json decides how its files load.
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'install-check', private: true }));
    execFileSync('npm', ['install', join(root, tarball), '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, stdio: 'pipe', timeout: 600_000 });
  }, 660_000);

  /** Runs the installed CLI in the shared root. */
  function installedCli(args: string[]): { status: number | null; stderr: string } {
    const run = spawnSync(process.execPath, [join(root, 'node_modules', 'celeriac', 'bin', 'celeriac.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    return { status: run.status, stderr: run.stderr };
  }

  it('installs no driver nor loader it was not asked for, and names the package to install', () => {
    for (const optional of ['ioredis', 'amqplib', 'tsx', '@opentelemetry/api']) expect(existsSync(join(root, 'node_modules', optional)), optional).toBe(false);
    // Tracing turned on without the OpenTelemetry API: the send fails with one line naming it.
    const traced = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "import { Celeriac } from 'celeriac'; const app = new Celeriac({ broker: 'memory://t', backend: 'memory://t', tracing: true }); app.task('t.x', () => 1); await app.sendTask('t.x').sent.catch((error) => console.error(error.message)); await app.close();"],
      { cwd: root, encoding: 'utf8', timeout: 30_000 },
    );
    expect(traced.stderr.trim()).toBe('tracing (tracing: true) needs the @opentelemetry/api package, which is not installed; run: npm install @opentelemetry/api');
    writeFileSync(join(root, 'tasks.ts'), ESM_TASKS);
    expect(installedCli(['worker', '--broker', 'redis://127.0.0.1:6379/0']).stderr).toMatch(/needs the ioredis package, which is not installed; run: npm install ioredis/);
    expect(installedCli(['worker', '--broker', 'amqp://guest:guest@127.0.0.1:5672//']).stderr).toMatch(/needs the amqplib package.*npm install amqplib/);
    expect(installedCli(['worker', '-A', './tasks.ts']).stderr).toMatch(/loading the TypeScript module \S*tasks\.ts needs the tsx package.*npm install tsx/);
    // What the projects below need: the TypeScript loader.
    execFileSync('npm', ['install', 'tsx', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, stdio: 'pipe', timeout: 300_000 });
  }, 330_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('ships its license, types and the sources its source maps name', () => {
    const installed = join(root, 'node_modules', 'celeriac');
    for (const file of ['LICENSE', 'dist/index.js', 'dist/index.d.ts', 'bin/celeriac.js']) expect(existsSync(join(installed, file)), file).toBe(true);
    for (const entry of ['celeriac', 'celeriac/testing', 'celeriac/dashboard']) {
      const loaded = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(entry)}).then((m) => console.log(Object.keys(m).length))`], { cwd: root, encoding: 'utf8' });
      expect(Number(loaded.stdout.trim()), `${entry}: ${loaded.stderr}`).toBeGreaterThan(0);
    }
    const maps = (readdirSync(join(installed, 'dist'), { recursive: true }) as string[]).filter((file) => file.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(20);
    for (const map of maps) {
      const path = join(installed, 'dist', map);
      const { sources } = JSON.parse(readFileSync(path, 'utf8')) as { sources: string[] };
      for (const source of sources) expect(existsSync(resolve(dirname(path), source)), `${map} names ${source}`).toBe(true);
    }
  });

  it('publishes types that check in a strict project of its own, without the internals', () => {
    const dir = join(root, 'types-check');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'types-check', version: '1.0.0', type: 'module' }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023'], types: ['node'] }, include: ['check.ts'] }),
    );
    writeFileSync(
      join(dir, 'check.ts'),
      [
        "import { Celeriac, chain, chord, group, type GroupResult } from 'celeriac';",
        "import { startTestWorker } from 'celeriac/testing';",
        'const app = new Celeriac();',
        "const add = app.task('t.add', (_ctx, a: number, b: number) => a + b);",
        "const tsum = app.task('t.sum', (_ctx, xs: number[]) => xs.reduce((x, y) => x + y, 0));",
        'export async function run(): Promise<number> {',
        '  await using worker = await startTestWorker(app);',
        '  const squares: GroupResult<[number, number]> = group(add.s(1, 1), add.s(2, 2)).delay();',
        '  await worker.untilIdle();',
        '  return (await chain(add.s(1, 2), add.s(3)).delay()) + (await chord([add.s(1, 1)], tsum.s()).delay()) + (await squares)[0];',
        '}',
        '// @ts-expect-error internal: not in the published types',
        'app.buildMessage;',
      ].join('\n'),
    );
    execFileSync('npm', ['install', '@types/node@20', '--no-save', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, stdio: 'pipe', timeout: 300_000 });
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8', timeout: 120_000 });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  }, 330_000);

  for (const project of PROJECTS) {
    it(`${project.name}: the worker runs ${project.tasks[0]} and ${project.client[0]} calls it`, async () => {
      const dir = join(root, project.name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: project.name, version: '1.0.0', type: project.type }));
      writeFileSync(join(dir, project.tasks[0]), project.tasks[1]);
      writeFileSync(join(dir, project.client[0]), project.client[1]);
      const broker = `sqlite://${join(dir, 'celeriac.db')}`;
      const cli = join(root, 'node_modules', 'celeriac', 'bin', 'celeriac.js');
      const worker = startWorkerProcess(broker, [], {}, `./${project.tasks[0]}`, { cli, cwd: dir });
      try {
        await worker.waitFor('ready', 30_000);
        expect(worker.log()).toContain('1 tasks [tasks.add]');
        // A TypeScript module is compiled beside itself for the import, then the output removed.
        expect(readdirSync(dir).filter((file) => file.includes('.celeriac-'))).toEqual([]);
        const client = spawnSync(process.execPath, [project.client[0]], { cwd: dir, encoding: 'utf8', timeout: 30_000, env: { ...process.env, CELERIAC_BROKER_URL: broker } });
        expect(client.stderr.replace(/.*ExperimentalWarning.*\n|.*--trace-warnings.*\n/g, '')).toBe('');
        expect(client.stdout.trim()).toBe('5');
      } finally {
        worker.child.kill('SIGTERM');
        await worker.exited;
      }
    });
  }
});
