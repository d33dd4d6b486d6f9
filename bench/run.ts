/**
 * Runs the benchmark suites and writes bench/RESULTS.md.
 * Usage: npm run bench [-- suite ...]   (suites: core, redis, amqp, canvas, pools, monitoring, dashboard, separate, scale; default: all)
 */
import { runAmqpBench } from './amqp.js';
import { runCanvasBench } from './canvas.js';
import { runCoreBench } from './core.js';
import { runDashboardBench } from './dashboard.js';
import { runMonitoringBench } from './monitoring.js';
import { runPoolsBench } from './pools.js';
import { runRedisBench } from './redis.js';
import { runScaleBench } from './scale.js';
import { runSeparateBench } from './separate.js';

const SUITES: Record<string, () => Promise<void>> = { core: runCoreBench, redis: runRedisBench, amqp: runAmqpBench, canvas: runCanvasBench, pools: () => runPoolsBench(), monitoring: runMonitoringBench, dashboard: runDashboardBench, separate: runSeparateBench, scale: runScaleBench };

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
// A suite may leave a client's handle open (the separate suite did, after writing its results):
// the run ends when the suites have, not when every handle is closed.
process.exit(0);
