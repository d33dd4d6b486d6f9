/** The frame every dashboard page shares, and the small pieces pages are made of. */
import { SCRIPT_VERSION, STYLE_VERSION } from './assets.js';
import { html, type Html, type HtmlValue } from './html.js';

export type Section = 'workers' | 'tasks' | 'queues' | 'charts' | 'none';

/** A message shown once at the top of the next page. */
export interface Flash {
  text: string;
  error: boolean;
}

/** What every page needs besides its content. */
export interface PageContext {
  csrf: string;
  /** Show a log-out button (a session cookie is in use). */
  session: boolean;
  flash?: Flash | undefined;
}

export interface LayoutOptions {
  title: string;
  section: Section;
  /** Event kinds that make the page refresh its `[data-live]` regions: `tasks`, `workers`. */
  liveOn?: string[];
  /** At most one refresh per this many ms. */
  liveMin?: number;
}

export function layout(context: PageContext, options: LayoutOptions, content: Html): Html {
  const nav = (section: Section, href: string, label: string): Html => html`<a href="${href}"${options.section === section ? html` class="current" aria-current="page"` : ''}>${label}</a>`;
  const live = options.liveOn && options.liveOn.length > 0;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · celeriac</title>
<link rel="stylesheet" href="/static/app.css?v=${STYLE_VERSION}">
<script src="/static/app.js?v=${SCRIPT_VERSION}" defer></script>
</head>
<body${live ? html` data-live-on="${options.liveOn!.join(' ')}" data-live-min="${options.liveMin ?? 300}"` : ''}>
<header>
  <a class="brand" href="/">celeriac</a>
  ${nav('workers', '/', 'Workers')}
  ${nav('tasks', '/tasks', 'Tasks')}
  ${nav('queues', '/queues', 'Queues')}
  ${nav('charts', '/charts', 'Charts')}
  <a href="/metrics">Metrics</a>
  <span class="spacer"></span>
  ${live ? html`<span id="live-status" class="live off">connecting</span>` : ''}
  ${context.session ? html`<form method="post" action="/logout">${csrfField(context)}<button type="submit">Log out</button></form>` : ''}
</header>
<main>
${context.flash ? html`<div class="flash${context.flash.error ? ' error' : ''}" role="status">${context.flash.text}</div>` : ''}
${content}
</main>
</body>
</html>`;
}

/** The hidden field every form posts. */
export function csrfField(context: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${context.csrf}">`;
}

/** A POST form with one button (and optional fields before it). */
export function actionForm(context: PageContext, action: string, label: string, options: { fields?: HtmlValue; danger?: boolean; name?: string } = {}): Html {
  return html`<form class="inline" method="post" action="${action}"${options.name ? html` data-action="${options.name}"` : ''}>${csrfField(context)}${options.fields}<button type="submit" class="${options.danger ? 'danger' : ''}">${label}</button></form>`;
}

export function badge(text: string): Html {
  return html`<span class="badge ${text}">${text}</span>`;
}

/** A Unix time (seconds) as a `<time>` the script shows in local time; `-` for none. */
export function timeOf(seconds: number | null | undefined): Html {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return html`<span class="muted">-</span>`;
  const iso = new Date(seconds * 1000).toISOString();
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`;
}

/** Seconds as an age: `3 s`, `4 min`, `2 h`. */
export function age(seconds: number): string {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

export function clip(text: string | null | undefined, max = 120): string {
  if (!text) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function plural(n: number, noun: string): string {
  return `${n.toLocaleString('en')} ${noun}${n === 1 ? '' : 's'}`;
}
