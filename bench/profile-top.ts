/**
 * Prints the functions with the most self time in a V8 CPU profile (`node --cpu-prof`, as
 * `CELERIAC_BENCH_PROFILE=1 npx tsx bench/run.ts separate` writes them to bench/profiles/).
 *
 * Usage: npx tsx bench/profile-top.ts bench/profiles/<file>.cpuprofile [how many, default 25]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { table } from './lib.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** The node sampled at each tick. */
  samples: number[];
  /** Microseconds before each sample. */
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  share: number;
}

/** Self time per function (nodes of the same function and place added up), most first. */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const micros = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id)!;
    const url = frame.url.startsWith('file://') ? relative(process.cwd(), new URL(frame.url).pathname) : frame.url;
    const key = `${frame.functionName || '(anonymous)'}\t${url ? `${url}:${frame.lineNumber + 1}` : ''}`;
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    micros.set(key, (micros.get(key) ?? 0) + delta);
    total += delta;
  });
  return [...micros]
    .map(([key, us]) => {
      const [name, where] = key.split('\t') as [string, string];
      return { name, where, ms: us / 1000, share: us / total };
    })
    .sort((a, b) => b.ms - a.ms);
}

function main(): void {
  const [file, count = '25'] = process.argv.slice(2);
  if (!file) {
    console.error('usage: npx tsx bench/profile-top.ts <file.cpuprofile> [how many]');
    process.exit(2);
  }
  const times = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const totalMs = times.reduce((sum, t) => sum + t.ms, 0);
  console.log(`${file}: ${(totalMs / 1000).toFixed(2)} s sampled`);
  console.log(table(['self ms', 'self %', 'function', 'where'], times.slice(0, Number(count)).map((t) => [t.ms.toFixed(1), (t.share * 100).toFixed(1), t.name, t.where])));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
