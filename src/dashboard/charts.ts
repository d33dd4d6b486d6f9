/**
 * Line charts as plain SVG, drawn on the server: no chart library, no script, nothing inline
 * for the content security policy to refuse (colours are SVG attributes, not styles).
 */
import { html, type Html } from './html.js';
import type { SeriesData } from './series.js';

const PALETTE = ['#2e6bd6', '#1a7f37', '#c62828', '#b26b00', '#7b3fb3', '#00838f', '#ad1457', '#5d4037', '#546e7a'];
const WIDTH = 560;
const HEIGHT = 220;
const PAD = { left: 52, right: 12, top: 14, bottom: 26 };

/** Options of {@link lineChart}. */
export interface ChartOptions {
  title: string;
  /** Formats a y value for the axis: `12/s`, `0.25 s`. */
  format?: (value: number) => string;
  /** Id of the chart, for tests and links. */
  id?: string;
}

/** One chart: a line per series over the buckets, axes, and a legend. */
export function lineChart(data: SeriesData, options: ChartOptions): Html {
  const format = options.format ?? formatNumber;
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const values = data.series.flatMap((series) => series.values.filter((value): value is number => value !== null));
  const top = niceCeiling(Math.max(0, ...values));
  const n = data.times.length;
  const x = (i: number): number => PAD.left + (n <= 1 ? plotWidth : (i / (n - 1)) * plotWidth);
  const y = (value: number): number => PAD.top + plotHeight - (top === 0 ? 0 : (value / top) * plotHeight);
  const gridLines = [0, 0.25, 0.5, 0.75, 1].map((fraction) => {
    const value = top * fraction;
    const at = y(value).toFixed(1);
    return html`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${at}" y2="${at}" stroke="#e4e7ec" stroke-width="1"/><text x="${PAD.left - 6}" y="${(Number(at) + 4).toFixed(1)}" text-anchor="end">${format(value)}</text>`;
  });
  const span = n > 1 ? data.times[n - 1]! - data.times[0]! : 0;
  const ticks = n > 1 ? [0, Math.floor((n - 1) / 2), n - 1] : [];
  const tickLabels = ticks.map((i) => html`<text x="${x(i).toFixed(1)}" y="${HEIGHT - 8}" text-anchor="${i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle'}">${relative(data.times[i]! - data.times[n - 1]!, span)}</text>`);
  const lines = data.series.map((series, index) => {
    const colour = PALETTE[index % PALETTE.length]!;
    const segments: string[][] = [[]];
    series.values.forEach((value, i) => {
      if (value === null) segments.push([]);
      else segments[segments.length - 1]!.push(`${x(i).toFixed(1)},${y(value).toFixed(1)}`);
    });
    return segments
      .filter((points) => points.length > 0)
      .map((points) =>
        points.length === 1
          ? html`<circle cx="${points[0]!.split(',')[0]}" cy="${points[0]!.split(',')[1]}" r="2.5" fill="${colour}"/>`
          : html`<polyline fill="none" stroke="${colour}" stroke-width="1.8" stroke-linejoin="round" points="${points.join(' ')}"/>`,
      );
  });
  const legend = data.series.map(
    (series, index) => html`<span><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" rx="2" fill="${PALETTE[index % PALETTE.length]!}"/></svg> ${series.label}</span>`,
  );
  return html`<div class="card"${options.id ? html` id="${options.id}"` : ''}>
  <h2>${options.title}</h2>
  <svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${options.title}">
    ${gridLines}
    <line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${HEIGHT - PAD.bottom}" stroke="#c9d0da"/>
    ${tickLabels}
    ${lines}
  </svg>
  <div class="legend">${data.series.length === 0 ? html`<span class="muted">no data yet</span>` : legend}</div>
</div>`;
}

/** A round number at or above `value` for the top of the axis: 1, 2, 2.5, 5 × 10^n. */
export function niceCeiling(value: number): number {
  if (value <= 0) return 0;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function formatNumber(value: number): string {
  if (value === 0) return '0';
  if (Math.abs(value) >= 1000) return `${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k`;
  if (Math.abs(value) >= 10) return value.toFixed(0);
  return Number(value.toPrecision(2)).toString();
}

/** Seconds formatted as a run time: `850 ms`, `2.5 s`, `3.2 min`. */
export function formatSeconds(value: number): string {
  if (value === 0) return '0';
  if (value < 1) return `${Number((value * 1000).toPrecision(3))} ms`;
  if (value < 120) return `${Number(value.toPrecision(3))} s`;
  return `${Number((value / 60).toPrecision(3))} min`;
}

function relative(offsetSeconds: number, span: number): string {
  if (offsetSeconds === 0) return 'now';
  const minutes = -offsetSeconds / 60;
  return span >= 120 ? `-${Math.round(minutes)} min` : `-${Math.round(-offsetSeconds)} s`;
}
