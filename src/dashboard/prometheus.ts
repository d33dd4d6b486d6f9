/**
 * Metrics in Prometheus' text exposition format (version 0.0.4): counters, gauges and
 * histograms with labels, and collectors that set gauges at scrape time. Label values come
 * from the broker (task names, queues, workers), so each metric keeps at most
 * {@link MAX_SERIES} label sets; those beyond are not recorded, and counted.
 */

/** Label sets one metric keeps; a stream of made-up task names cannot grow it further. */
export const MAX_SERIES = 5_000;

/** The content type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prometheus' default buckets, stretched to tasks that run for minutes (seconds). */
export const RUNTIME_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

type Labels = Readonly<Record<string, string>>;

abstract class Metric {
  protected readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    protected readonly registry: Registry,
  ) {}

  /** The series of `labels`, created on first use; undefined past {@link MAX_SERIES}. */
  protected seriesFor(labels: Labels): { labels: Labels; value: number } | undefined {
    const key = labelKey(labels);
    let series = this.series.get(key);
    if (!series) {
      if (this.series.size >= MAX_SERIES) {
        this.registry.seriesDropped++;
        return undefined;
      }
      series = { labels, value: 0 };
      this.series.set(key, series);
    }
    return series;
  }

  /** Its lines in the text format. */
  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.series.values()) lines.push(`${this.name}${formatLabels(labels)} ${formatValue(value)}`);
    return lines;
  }
}

export class Counter extends Metric {
  inc(labels: Labels = {}, by = 1): void {
    const series = this.seriesFor(labels);
    if (series) series.value += by;
  }

  /** Sets a counter kept elsewhere (a worker's heartbeat count); it should only grow. */
  set(labels: Labels, value: number): void {
    const series = this.seriesFor(labels);
    if (series) series.value = value;
  }
}

export class Gauge extends Metric {
  set(labels: Labels, value: number): void {
    const series = this.seriesFor(labels);
    if (series) series.value = value;
  }

  /** Forgets every series, before a collector sets the current ones. */
  reset(): void {
    this.series.clear();
  }
}

export class Histogram extends Metric {
  readonly #buckets: readonly number[];
  readonly #observations = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, buckets: readonly number[], registry: Registry) {
    super(name, help, 'histogram', registry);
    this.#buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = labelKey(labels);
    let entry = this.#observations.get(key);
    if (!entry) {
      if (this.#observations.size >= MAX_SERIES) {
        this.registry.seriesDropped++;
        return;
      }
      entry = { labels, counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
      this.#observations.set(key, entry);
    }
    const index = this.#buckets.findIndex((bound) => value <= bound);
    if (index >= 0) entry.counts[index]!++;
    entry.sum += value;
    entry.count++;
  }

  override render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`];
    for (const { labels, counts, sum, count } of this.#observations.values()) {
      let cumulative = 0;
      this.#buckets.forEach((bound, i) => {
        cumulative += counts[i]!;
        lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: formatValue(bound) })} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${count}`);
      lines.push(`${this.name}_sum${formatLabels(labels)} ${formatValue(sum)}`);
      lines.push(`${this.name}_count${formatLabels(labels)} ${count}`);
    }
    return lines;
  }
}

/** The metrics of one endpoint, rendered in registration order. */
export class Registry {
  readonly #metrics: Metric[] = [];
  readonly #collectors: Array<() => Promise<void> | void> = [];
  /** Label sets not recorded because a metric had {@link MAX_SERIES} already. */
  seriesDropped = 0;

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help, 'counter', this));
  }

  gauge(name: string, help: string): Gauge {
    return this.#add(new Gauge(name, help, 'gauge', this));
  }

  histogram(name: string, help: string, buckets: readonly number[] = RUNTIME_BUCKETS): Histogram {
    return this.#add(new Histogram(name, help, buckets, this));
  }

  /** Runs before each scrape, to set gauges from what is true now (queue lengths, workers up). */
  collect(collector: () => Promise<void> | void): void {
    this.#collectors.push(collector);
  }

  /** Every metric in the text format, collectors run first. */
  async render(): Promise<string> {
    await Promise.all(this.#collectors.map(async (collector) => collector()));
    return `${this.#metrics.flatMap((metric) => metric.render()).join('\n')}\n`;
  }

  #add<M extends Metric>(metric: M): M {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(metric.name)) throw new Error(`invalid metric name ${metric.name}`);
    this.#metrics.push(metric);
    return metric;
  }
}

function labelKey(labels: Labels): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}\0${value}`)
    .join('\u0001');
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(',')}}`;
}

/** A sample value: integers as they are, `+Inf`, `-Inf`, `NaN` as Prometheus spells them. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
