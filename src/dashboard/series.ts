/**
 * Task outcomes over time, per task name, for the charts: time is cut into buckets (10 s by
 * default, the last hour kept), each holding per name the tasks that succeeded and failed and a
 * sample of their run times (at most {@link SAMPLES_PER_BUCKET}, kept by reservoir sampling),
 * from which percentiles are read. Events are placed by their own timestamps, so late ones land
 * where they belong; older than the window, they are left out.
 */
import { systemClock, type Clock } from '../clock.js';

/** Run times kept per bucket and name. */
export const SAMPLES_PER_BUCKET = 500;
/** Task names one bucket keeps apart; the rest are counted under `(other)`. */
const NAMES_PER_BUCKET = 200;

interface Cell {
  succeeded: number;
  failed: number;
  /** How many run times were offered, for the reservoir. */
  seen: number;
  runtimes: number[];
}

/** Options of a {@link TaskSeries}. */
export interface SeriesOptions {
  /** Seconds per bucket. Default 10. */
  bucketSeconds?: number;
  /** Buckets kept. Default 360 (an hour of 10 s buckets). */
  buckets?: number;
  clock?: Clock;
}

/** One chart's data: bucket start times (Unix seconds) and a value per bucket for each series. */
export interface SeriesData {
  times: number[];
  series: Array<{ label: string; values: Array<number | null> }>;
}

/** Per name over a window: totals and run-time percentiles (seconds, null without samples). */
export interface NameSummary {
  name: string;
  succeeded: number;
  failed: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export class TaskSeries {
  readonly bucketSeconds: number;
  readonly #buckets: number;
  readonly #clock: Clock;
  readonly #cells = new Map<number, Map<string, Cell>>();

  constructor(options: SeriesOptions = {}) {
    this.bucketSeconds = options.bucketSeconds ?? 10;
    this.#buckets = options.buckets ?? 360;
    this.#clock = options.clock ?? systemClock;
  }

  /** Seconds of history kept. */
  get windowSeconds(): number {
    return this.bucketSeconds * this.#buckets;
  }

  /** Records one task's end at `timestamp` (Unix seconds). */
  record(name: string, outcome: 'succeeded' | 'failed', timestamp: number, runtime?: number | null): void {
    const bucket = Math.floor(timestamp / this.bucketSeconds);
    const current = this.#currentBucket();
    if (bucket <= current - this.#buckets || bucket > current + 1) return;
    let cells = this.#cells.get(bucket);
    if (!cells) {
      this.#cells.set(bucket, (cells = new Map()));
      this.#prune(current);
    }
    const key = cells.has(name) || cells.size < NAMES_PER_BUCKET ? name : '(other)';
    let cell = cells.get(key);
    if (!cell) cells.set(key, (cell = { succeeded: 0, failed: 0, seen: 0, runtimes: [] }));
    cell[outcome]++;
    if (typeof runtime === 'number' && Number.isFinite(runtime) && runtime >= 0) {
      cell.seen++;
      if (cell.runtimes.length < SAMPLES_PER_BUCKET) cell.runtimes.push(runtime);
      else {
        const slot = Math.floor(Math.random() * cell.seen);
        if (slot < SAMPLES_PER_BUCKET) cell.runtimes[slot] = runtime;
      }
    }
  }

  /** Task names seen within the last `seconds`, busiest first. */
  names(seconds = this.windowSeconds): string[] {
    const totals = new Map<string, number>();
    for (const [, cells] of this.#window(seconds)) for (const [name, cell] of cells) totals.set(name, (totals.get(name) ?? 0) + cell.succeeded + cell.failed);
    return [...totals].sort((a, b) => b[1] - a[1]).map(([name]) => name);
  }

  /** Tasks ended per second in each bucket, for each of `names`, the rest summed as `(other)`. */
  throughput(seconds: number, names: string[]): SeriesData {
    return this.#perName(seconds, names, (cell) => (cell.succeeded + cell.failed) / this.bucketSeconds);
  }

  /** Failures in each bucket, for each of `names`, the rest summed as `(other)`. */
  failures(seconds: number, names: string[]): SeriesData {
    return this.#perName(seconds, names, (cell) => cell.failed);
  }

  /** Run-time percentiles (p50, p90, p99) in each bucket, of one name or of all. */
  percentiles(seconds: number, name?: string): SeriesData {
    const window = this.#window(seconds);
    const p = (q: number): Array<number | null> => window.map(([, cells]) => percentile(samplesOf(cells, name), q));
    return { times: window.map(([time]) => time), series: [{ label: 'p50', values: p(0.5) }, { label: 'p90', values: p(0.9) }, { label: 'p99', values: p(0.99) }] };
  }

  /** Totals and percentiles over the window, per name, busiest first. */
  summary(seconds: number): NameSummary[] {
    const byName = new Map<string, { succeeded: number; failed: number; runtimes: number[] }>();
    for (const [, cells] of this.#window(seconds)) {
      for (const [name, cell] of cells) {
        let entry = byName.get(name);
        if (!entry) byName.set(name, (entry = { succeeded: 0, failed: 0, runtimes: [] }));
        entry.succeeded += cell.succeeded;
        entry.failed += cell.failed;
        for (const runtime of cell.runtimes) entry.runtimes.push(runtime);
      }
    }
    return [...byName]
      .map(([name, { succeeded, failed, runtimes }]) => {
        runtimes.sort((a, b) => a - b);
        return { name, succeeded, failed, p50: sortedPercentile(runtimes, 0.5), p90: sortedPercentile(runtimes, 0.9), p99: sortedPercentile(runtimes, 0.99) };
      })
      .sort((a, b) => b.succeeded + b.failed - (a.succeeded + a.failed));
  }

  #perName(seconds: number, names: string[], value: (cell: Cell) => number): SeriesData {
    const window = this.#window(seconds);
    const wanted = new Set(names);
    const series = names.map((label) => ({ label, values: window.map(([, cells]) => { const cell = cells.get(label); return cell ? value(cell) : 0; }) }));
    const hasOther = window.some(([, cells]) => [...cells.keys()].some((name) => !wanted.has(name)));
    if (hasOther) {
      series.push({
        label: '(other)',
        values: window.map(([, cells]) => {
          let sum = 0;
          for (const [name, cell] of cells) if (!wanted.has(name)) sum += value(cell);
          return sum;
        }),
      });
    }
    return { times: window.map(([time]) => time), series };
  }

  /** The buckets of the last `seconds`, oldest first, empty ones included. */
  #window(seconds: number): Array<[number, Map<string, Cell>]> {
    const current = this.#currentBucket();
    const count = Math.max(1, Math.min(this.#buckets, Math.ceil(seconds / this.bucketSeconds)));
    const out: Array<[number, Map<string, Cell>]> = [];
    for (let bucket = current - count + 1; bucket <= current; bucket++) out.push([bucket * this.bucketSeconds, this.#cells.get(bucket) ?? new Map()]);
    return out;
  }

  #currentBucket(): number {
    return Math.floor(this.#clock.now() / 1000 / this.bucketSeconds);
  }

  #prune(current: number): void {
    for (const bucket of this.#cells.keys()) if (bucket <= current - this.#buckets) this.#cells.delete(bucket);
  }
}

function samplesOf(cells: Map<string, Cell>, name: string | undefined): number[] {
  if (name !== undefined) return [...(cells.get(name)?.runtimes ?? [])];
  return [...cells.values()].flatMap((cell) => cell.runtimes);
}

function percentile(samples: number[], q: number): number | null {
  return sortedPercentile(samples.sort((a, b) => a - b), q);
}

/** The nearest-rank percentile of sorted samples. */
function sortedPercentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
