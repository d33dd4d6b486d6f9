/**
 * Runs the benchmark suites and writes bench/RESULTS.md.
 * Usage: npm run bench [-- suite ...]   (suites: core; default: all)
 */
import { runCoreBench } from './core.js';

const SUITES: Record<string, () => Promise<void>> = { core: runCoreBench };

const chosen = process.argv.slice(2);
for (const name of chosen.length ? chosen : Object.keys(SUITES)) {
  const suite = SUITES[name];
  if (!suite) {
    console.error(`unknown suite ${name}; suites: ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
  console.log(`== ${name}`);
  await suite();
}
