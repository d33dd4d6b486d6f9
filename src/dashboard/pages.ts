/**
 * The dashboard's pages, rendered on the server from what the store, the fleet and the result
 * backend hold. Each takes plain data and returns markup; everything from the broker goes
 * through the escaping template.
 */
import type { ResultMeta } from '../backends/backend.js';
import type { DeadLetter } from '../brokers/broker.js';
import type { EventTaskState, TaskInfo, WorkerInfo } from '../monitor/state.js';
import { formatSeconds, lineChart } from './charts.js';
import type { QueueInfo, WorkerDetails } from './fleet.js';
import { html, query, type Html } from './html.js';
import { actionForm, age, badge, clip, csrfField, layout, plural, timeOf, type PageContext } from './layout.js';
import type { NameSummary, SeriesData } from './series.js';
import type { TaskPage, TaskQuery } from './store.js';

export const TASK_STATES: readonly EventTaskState[] = ['PENDING', 'RECEIVED', 'STARTED', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED', 'REJECTED'];
const READY: ReadonlySet<string> = new Set(['SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED']);

/** A task in a workflow tree, with the tasks it started. */
export interface WorkflowNode {
  id: string;
  name: string | null;
  state: string | null;
  children: WorkflowNode[];
}

/** One row of the workers page. */
export interface WorkerRow {
  hostname: string;
  info: WorkerInfo | undefined;
  alive: boolean;
  details: WorkerDetails | undefined;
}

export function workersPage(
  context: PageContext,
  view: { workers: WorkerRow[]; counts: ReadonlyMap<string, number>; stored: number; taskEventsSeen: boolean; lastError: string | undefined; now: number },
): Html {
  const online = view.workers.filter((worker) => worker.alive).length;
  const rows = view.workers.map(({ hostname, info, alive, details }) => {
    const heartbeat = info?.lastHeartbeat ?? null;
    return html`<tr data-worker="${hostname}">
  <td>${badge(alive ? 'online' : 'offline')}</td>
  <td><a href="/workers/${encodeURIComponent(hostname)}">${hostname}</a></td>
  <td class="num">${heartbeat === null ? '-' : `${age(view.now - heartbeat)} ago`}</td>
  <td class="num">${info?.active ?? '-'}</td>
  <td class="num">${info?.processed ?? '-'}</td>
  <td class="num">${details?.failed ?? '-'}</td>
  <td class="mono">${info?.loadavg ? info.loadavg.map((load) => load.toFixed(2)).join(' ') : '-'}</td>
  <td>${details?.pool ?? (details?.poolSize === null || details?.poolSize === undefined ? '-' : '')}${details?.poolSize !== null && details?.poolSize !== undefined ? html` <span class="muted" data-field="pool-size">(${details.poolSize})</span>` : ''}</td>
  <td>${details?.queues ? details.queues.join(', ') : '-'}</td>
  <td class="muted">${info?.software ?? ''}</td>
</tr>`;
  });
  const content = html`<h1>Workers</h1>
<div id="summary" data-live>
  <div class="stats">
    <div class="stat"><b>${online}</b><span>workers online</span></div>
    <div class="stat"><b>${view.stored.toLocaleString('en')}</b><span>tasks seen</span></div>
    ${TASK_STATES.filter((state) => view.counts.has(state)).map((state) => html`<div class="stat"><b><a href="/tasks${query({ state })}">${(view.counts.get(state) ?? 0).toLocaleString('en')}</a></b><span>${state}</span></div>`)}
  </div>
  ${view.lastError ? html`<div class="flash error">${view.lastError}</div>` : ''}
  ${!view.taskEventsSeen && online > 0 ? html`<div class="flash">No task events yet: workers send them when started with <code>-E</code>. ${actionForm(context, '/workers/enable-events', 'Turn on task events on every worker')}</div>` : ''}
</div>
<table id="workers" data-live>
  <thead><tr><th>Status</th><th>Worker</th><th class="num">Heartbeat</th><th class="num">Active</th><th class="num">Processed</th><th class="num">Failed</th><th>Load</th><th>Pool</th><th>Queues</th><th>Software</th></tr></thead>
  <tbody>${rows.length > 0 ? rows : html`<tr><td colspan="10" class="muted">No workers seen yet. They appear with their first heartbeat (every 2 s).</td></tr>`}</tbody>
</table>`;
  return layout(context, { title: 'Workers', section: 'workers', liveOn: ['workers', 'tasks'], liveMin: 1000 }, content);
}

export function workerPage(
  context: PageContext,
  view: {
    hostname: string;
    info: WorkerInfo | undefined;
    alive: boolean;
    details: WorkerDetails | undefined;
    registered: string[] | undefined;
    active: Array<{ id: string; name: string; args?: unknown; time_start?: unknown }> | undefined;
    stats: Record<string, unknown> | undefined;
    now: number;
  },
): Html {
  const { hostname, info, details } = view;
  const base = `/workers/${encodeURIComponent(hostname)}`;
  const heartbeat = info?.lastHeartbeat ?? null;
  const content = html`<h1>${hostname} ${badge(view.alive ? 'online' : 'offline')}</h1>
<div class="card" id="worker-props" data-live>
  <dl class="props">
    <dt>Heartbeat</dt><dd>${heartbeat === null ? '-' : html`${age(view.now - heartbeat)} ago (${timeOf(heartbeat)})`}</dd>
    <dt>Active</dt><dd>${info?.active ?? '-'}</dd>
    <dt>Processed</dt><dd>${info?.processed ?? '-'}</dd>
    <dt>Failed</dt><dd>${details?.failed ?? '-'}</dd>
    <dt>Load</dt><dd>${info?.loadavg ? info.loadavg.join(' ') : '-'}</dd>
    <dt>Pool</dt><dd>${details?.pool ?? '-'} ${details?.poolSize !== null && details?.poolSize !== undefined ? html`<span id="pool-size">${details.poolSize}</span> slots` : ''}</dd>
    <dt>Queues</dt><dd id="worker-queues">${details?.queues ? details.queues.join(', ') : '-'}</dd>
    <dt>PID</dt><dd>${info?.pid ?? '-'}</dd>
    <dt>Software</dt><dd>${info?.software ?? '-'}</dd>
  </dl>
</div>
<div class="card">
  <h2>Control</h2>
  ${actionForm(context, `${base}/pool-grow`, 'Grow pool', { name: 'pool-grow', fields: html`<input type="number" name="n" value="1" min="1" max="1000" aria-label="slots to add">` })}
  ${actionForm(context, `${base}/pool-shrink`, 'Shrink pool', { name: 'pool-shrink', fields: html`<input type="number" name="n" value="1" min="1" max="1000" aria-label="slots to remove">` })}
  <br>
  ${actionForm(context, `${base}/rate-limit`, 'Set rate limit', {
    name: 'rate-limit',
    fields: html`<input name="task" placeholder="task name" required list="registered-tasks" aria-label="task name"><input name="rate" placeholder="10/s, 100/m, 0 = none" required aria-label="rate">`,
  })}
  <br>
  ${actionForm(context, `${base}/add-consumer`, 'Add consumer', { name: 'add-consumer', fields: html`<input name="queue" placeholder="queue" required aria-label="queue to consume">` })}
  ${actionForm(context, `${base}/cancel-consumer`, 'Cancel consumer', { name: 'cancel-consumer', fields: html`<input name="queue" placeholder="queue" required aria-label="queue to stop consuming">` })}
  <br>
  ${actionForm(context, `${base}/shutdown`, 'Shut down…', { danger: true, name: 'shutdown' })}
  <datalist id="registered-tasks">${(view.registered ?? []).map((name) => html`<option value="${name}">`)}</datalist>
</div>
<h2>Running now</h2>
<table id="active">
  <thead><tr><th>Task</th><th>Id</th><th>Args</th></tr></thead>
  <tbody>${
    view.active === undefined
      ? html`<tr><td colspan="3" class="muted">The worker did not answer.</td></tr>`
      : view.active.length === 0
        ? html`<tr><td colspan="3" class="muted">Nothing.</td></tr>`
        : view.active.map((task) => html`<tr><td>${task.name}</td><td class="mono"><a href="/tasks/${encodeURIComponent(task.id)}">${task.id}</a></td><td class="mono clip">${clip(typeof task.args === 'string' ? task.args : JSON.stringify(task.args))}</td></tr>`)
  }</tbody>
</table>
<h2>Registered tasks</h2>
<div class="card mono">${view.registered === undefined ? html`<span class="muted">The worker did not answer.</span>` : view.registered.join('\n') || '-'}</div>
${view.stats ? html`<h2>Stats</h2><pre>${JSON.stringify(view.stats, null, 2)}</pre>` : ''}`;
  return layout(context, { title: hostname, section: 'workers', liveOn: ['workers'], liveMin: 1000 }, content);
}

export function queuesPage(context: PageContext, view: { queues: QueueInfo[]; broker: string; listsDeadLetters: boolean }): Html {
  const rows = view.queues.map(
    (queue) => html`<tr data-queue="${queue.name}">
  <td><a href="/queues/${encodeURIComponent(queue.name)}">${queue.name}</a></td>
  <td class="num" data-field="length">${queue.length ?? '?'}</td>
  <td class="num" data-field="in-flight">${queue.flow.inFlight}</td>
  <td class="num" data-field="rate-in" title="${queue.flow.rateInFrom ?? 'no task-sent events and no two length samples yet'}">${rate(queue.flow.rateIn)}</td>
  <td class="num" data-field="rate-out">${rate(queue.flow.rateOut)}</td>
  <td class="num">${queue.deadLetters ?? '-'}</td>
  <td>${queue.consumers.join(', ') || html`<span class="muted">none</span>`}</td>
  <td>${actionForm(context, `/queues/${encodeURIComponent(queue.name)}/purge`, 'Purge…', { danger: true, name: 'purge' })}</td>
</tr>`,
  );
  const content = html`<h1>Queues <span class="muted">on ${view.broker}</span></h1>
<table id="queues" data-live>
  <thead><tr><th>Queue</th><th class="num">Waiting</th><th class="num">In flight</th><th class="num">In /s</th><th class="num">Out /s</th><th class="num">Dead letters</th><th>Consumers</th><th></th></tr></thead>
  <tbody>${rows}</tbody>
</table>
<p class="muted">In flight: tasks workers received from the queue and have not finished. Rates over the last minute: out, tasks workers received; in, tasks published (from task-sent events where producers send them, else out plus the queue's growth between length samples). A task's queue comes from its task-sent event, or from its worker when that consumes one queue only.</p>
${view.listsDeadLetters ? '' : html`<p class="muted">This broker cannot list its dead letters.</p>`}
<form class="card row" method="get" action="/queues">
  <label>Another queue (one no worker consumes is not always listed)<input name="queue" required placeholder="queue name" size="40"></label>
  <button type="submit">Show</button>
</form>`;
  return layout(context, { title: 'Queues', section: 'queues', liveOn: ['tasks'], liveMin: 2000 }, content);
}

export function queuePage(context: PageContext, view: { queue: QueueInfo; deadLetters: DeadLetter[] | undefined; resends: boolean }): Html {
  const { queue } = view;
  const letters = view.deadLetters?.filter((letter) => letter.queue === queue.name) ?? [];
  const content = html`<h1>Queue ${queue.name}</h1>
<div class="stats">
  <div class="stat"><b data-field="length">${queue.length ?? '?'}</b><span>waiting</span></div>
  <div class="stat"><b data-field="in-flight">${queue.flow.inFlight}</b><span>in flight</span></div>
  <div class="stat"><b data-field="rate-in">${rate(queue.flow.rateIn)}</b><span>in /s${queue.flow.rateInFrom ? ` (${queue.flow.rateInFrom})` : ''}</span></div>
  <div class="stat"><b data-field="rate-out">${rate(queue.flow.rateOut)}</b><span>out /s</span></div>
  <div class="stat"><b>${queue.deadLetters ?? '-'}</b><span>dead letters</span></div>
  <div class="stat"><b>${queue.consumers.length}</b><span>consumers</span></div>
</div>
${actionForm(context, `/queues/${encodeURIComponent(queue.name)}/purge`, 'Purge…', { danger: true, name: 'purge' })}
${view.resends && letters.length > 0 ? actionForm(context, `/queues/${encodeURIComponent(queue.name)}/dead-letters/resend`, 'Re-send all dead letters…', { name: 'resend-all', fields: html`<input type="hidden" name="all" value="yes">` }) : ''}
<h2>Dead letters</h2>
${
  view.deadLetters === undefined
    ? html`<p class="muted">This broker cannot list its dead letters.</p>`
    : html`<table id="dead-letters"><thead><tr><th>When</th><th>Task</th><th>Id</th><th>Reason</th><th></th></tr></thead><tbody>${
        letters.length === 0
          ? html`<tr><td colspan="5" class="muted">None.</td></tr>`
          : letters
              .slice()
              .reverse()
              .map((letter) => {
                const id = typeof letter.message.headers['id'] === 'string' ? letter.message.headers['id'] : null;
                const task = typeof letter.message.headers['task'] === 'string' ? letter.message.headers['task'] : '?';
                const resend =
                  view.resends && id
                    ? actionForm(context, `/queues/${encodeURIComponent(queue.name)}/dead-letters/resend`, 'Re-send…', {
                        name: 'resend',
                        fields: html`<input type="hidden" name="id" value="${id}"><input type="hidden" name="at" value="${String(letter.at)}">`,
                      })
                    : '';
                return html`<tr data-dead-letter="${id ?? ''}"><td>${timeOf(letter.at / 1000)}</td><td>${task}</td><td class="mono">${id ? html`<a href="/tasks/${encodeURIComponent(id)}">${id}</a>` : '-'}</td><td>${letter.reason}</td><td>${resend}</td></tr>`;
              })
      }</tbody></table>`
}`;
  return layout(context, { title: `Queue ${queue.name}`, section: 'queues' }, content);
}

/** A page that asks before a destructive action: its button posts the form again, confirmed. */
export function confirmPage(
  context: PageContext,
  view: { title: string; question: Html | string; action: string; confirmLabel: string; cancel: string; section: 'workers' | 'queues'; fields?: Record<string, string> },
): Html {
  const content = html`<h1>${view.title}</h1>
<div class="card" id="confirm">
  <p>${view.question}</p>
  <form method="post" action="${view.action}" class="inline">
    ${csrfField(context)}<input type="hidden" name="confirm" value="yes">${Object.entries(view.fields ?? {}).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
    <button type="submit" class="danger primary" data-action="confirm">${view.confirmLabel}</button>
  </form>
  <a href="${view.cancel}">Cancel</a>
</div>`;
  return layout(context, { title: view.title, section: view.section }, content);
}

export function tasksPage(context: PageContext, view: { page: TaskPage; query: TaskQuery & { window?: string | undefined }; names: string[]; workers: string[]; counts: ReadonlyMap<string, number>; stored: number }): Html {
  const { page } = view;
  const filters = { state: view.query.state, name: view.query.name, worker: view.query.worker, q: view.query.search, window: view.query.window, limit: page.limit === 50 ? undefined : page.limit };
  const option = (value: string, current: string | undefined, label = value): Html => html`<option value="${value}"${value === (current ?? '') ? ' selected' : ''}>${label}</option>`;
  const rows = page.tasks.map(
    (task) => html`<tr data-task-id="${task.uuid}" data-state="${task.state}">
  <td>${badge(task.state)}</td>
  <td>${task.name ?? html`<span class="muted">?</span>`}</td>
  <td class="mono"><a href="/tasks/${encodeURIComponent(task.uuid)}">${task.uuid}</a></td>
  <td class="mono clip">${clip(task.args, 60)}</td>
  <td class="mono clip">${clip(task.kwargs, 40)}</td>
  <td>${task.worker ?? ''}</td>
  <td>${timeOf(task.timeline.RECEIVED ?? task.timeline.PENDING ?? firstTime(task))}</td>
  <td class="num">${task.runtime === null ? '' : formatSeconds(task.runtime)}</td>
  <td class="mono clip">${clip(task.exception ?? task.result, 60)}</td>
</tr>`,
  );
  const last = page.offset + page.tasks.length;
  const pager = html`<div class="pager">
  ${page.offset > 0 ? html`<a href="/tasks${query({ ...filters, offset: Math.max(0, page.offset - page.limit) || undefined })}" rel="prev">← Newer</a>` : html`<span class="muted">← Newer</span>`}
  <span>${page.total === 0 ? 'No tasks match' : html`${(page.offset + 1).toLocaleString('en')}–${last.toLocaleString('en')} of <b id="match-count">${page.total.toLocaleString('en')}</b>`}</span>
  ${last < page.total ? html`<a href="/tasks${query({ ...filters, offset: page.offset + page.limit })}" rel="next">Older →</a>` : html`<span class="muted">Older →</span>`}
  <span class="muted">(${plural(view.stored, 'task')} held)</span>
</div>`;
  const content = html`<h1>Tasks</h1>
<form class="card row" method="get" action="/tasks" data-autosubmit id="filters">
  <label>State<select name="state">${option('', view.query.state, 'any')}${TASK_STATES.map((state) => option(state, view.query.state, `${state} (${view.counts.get(state) ?? 0})`))}</select></label>
  <label>Task<select name="name">${option('', view.query.name, 'any')}${view.names.map((name) => option(name, view.query.name))}</select></label>
  <label>Worker<select name="worker">${option('', view.query.worker, 'any')}${view.workers.map((worker) => option(worker, view.query.worker))}</select></label>
  <label>Time<select name="window">${option('', view.query.window, 'any time')}${option('5m', view.query.window, 'last 5 min')}${option('1h', view.query.window, 'last hour')}${option('24h', view.query.window, 'last day')}</select></label>
  <label>Search<input type="search" name="q" value="${view.query.search ?? ''}" placeholder="task id, or text in the arguments" size="34"></label>
  <label>Per page<select name="limit">${[25, 50, 100, 200].map((n) => option(String(n), String(page.limit)))}</select></label>
  <button type="submit" class="primary">Filter</button>
  ${Object.values(filters).some((value) => value !== undefined && value !== '') ? html`<a href="/tasks">Clear</a>` : ''}
</form>
<div id="task-list" data-live>
${pager}
<table id="tasks">
  <thead><tr><th>State</th><th>Task</th><th>Id</th><th>Args</th><th>Kwargs</th><th>Worker</th><th>Received</th><th class="num">Runtime</th><th>Result</th></tr></thead>
  <tbody>${rows.length > 0 ? rows : html`<tr><td colspan="9" class="muted">No tasks${view.stored === 0 ? ' yet: they appear as workers send task events (-E)' : ' match'}.</td></tr>`}</tbody>
</table>
</div>`;
  return layout(context, { title: 'Tasks', section: 'tasks', liveOn: ['tasks'], liveMin: 300 }, content);
}

export function taskPage(
  context: PageContext,
  view: {
    id: string;
    task: TaskInfo | undefined;
    meta: ResultMeta | null | undefined;
    metaError: string | undefined;
    children: Array<{ id: string; task: TaskInfo | undefined }>;
    parent: TaskInfo | undefined;
    workflow?: WorkflowNode;
    canRetry?: boolean;
  },
): Html {
  const { id, task, meta } = view;
  const state = task?.state ?? meta?.status ?? 'PENDING';
  const name = task?.name ?? meta?.name ?? null;
  const failed = meta?.status === 'FAILURE' || meta?.status === 'RETRY' || task?.state === 'FAILURE' || task?.state === 'RETRY';
  const exception = failed ? (meta && typeof meta.result === 'object' && meta.result !== null ? exceptionText(meta.result as Record<string, unknown>) : null) ?? task?.exception ?? null : task?.exception ?? null;
  const traceback = meta?.traceback || task?.traceback || null;
  const timeline = task ? (Object.entries(task.timeline) as Array<[string, number]>).sort((a, b) => a[1] - b[1]) : [];
  const start = timeline[0]?.[1];
  const content = html`<div id="task" data-live>
<h1>${name ?? 'Task'} ${badge(state)}</h1>
${view.metaError ? html`<div class="flash error">The result backend could not be read: ${view.metaError}</div>` : ''}
${!task && meta === null ? html`<div class="flash">No events and no stored result for this id (yet): unknown, not sent with events, or expired.</div>` : ''}
<div class="card">
  <dl class="props">
    <dt>Id</dt><dd class="mono" id="task-id">${id}</dd>
    <dt>State (events)</dt><dd>${task ? badge(task.state) : '-'}</dd>
    <dt>State (stored)</dt><dd id="stored-state">${meta ? badge(meta.status) : meta === null ? 'nothing stored' : '-'}</dd>
    <dt>Worker</dt><dd>${task?.worker ?? meta?.worker ?? '-'}</dd>
    <dt>Args</dt><dd class="mono" id="task-args">${task?.args ?? (meta?.args ? JSON.stringify(meta.args) : '-')}</dd>
    <dt>Kwargs</dt><dd class="mono" id="task-kwargs">${task?.kwargs ?? (meta?.kwargs ? JSON.stringify(meta.kwargs) : '-')}</dd>
    <dt>Retries</dt><dd>${task?.retries ?? meta?.retries ?? 0}</dd>
    <dt>Runtime</dt><dd>${runtimeOf(task)}</dd>
    <dt>Done</dt><dd>${meta?.date_done ?? '-'}</dd>
    <dt>Root</dt><dd class="mono">${task?.rootId && task.rootId !== id ? html`<a href="/tasks/${encodeURIComponent(task.rootId)}">${task.rootId}</a>` : '-'}</dd>
    <dt>Parent</dt><dd class="mono">${parentLink(task?.parentId ?? meta?.parent_id ?? null, view.parent)}</dd>
  </dl>
</div>
${!READY.has(state) ? html`<div class="card">${actionForm(context, `/tasks/${encodeURIComponent(id)}/revoke`, 'Revoke', { danger: true, name: 'revoke' })}${actionForm(context, `/tasks/${encodeURIComponent(id)}/terminate`, 'Terminate', { danger: true, name: 'terminate' })}<span class="muted">Revoke: it will not start. Terminate: stop it where it runs too.</span></div>` : ''}
${view.canRetry && name ? html`<div class="card">${actionForm(context, `/tasks/${encodeURIComponent(id)}/retry`, 'Retry', { name: 'retry' })}<span class="muted">Send ${name} again with the same arguments, as a new task (a child of this one).</span></div>` : ''}
${
  meta?.status === 'SUCCESS'
    ? html`<h2>Result</h2><pre id="result">${clip(stringify(meta.result), 100_000)}</pre>`
    : task?.result
      ? html`<h2>Result</h2><pre id="result">${task.result}</pre>`
      : ''
}
${exception ? html`<h2>Exception</h2><pre id="exception">${exception}</pre>` : ''}
${traceback ? html`<h2>Traceback</h2><pre id="traceback">${traceback}</pre>` : ''}
<h2>Timeline</h2>
<table id="timeline"><thead><tr><th>State</th><th>At</th><th class="num">After</th></tr></thead><tbody>${
    timeline.length === 0
      ? html`<tr><td colspan="3" class="muted">No events.</td></tr>`
      : timeline.map(([event, at]) => html`<tr><td>${badge(event)}</td><td>${timeOf(at)}</td><td class="num">${start === undefined ? '' : formatSeconds(at - start)}</td></tr>`)
  }</tbody></table>
${view.workflow && view.workflow.children.length > 0 ? html`<h2>Workflow</h2><div class="card"><ul class="workflow" id="workflow">${workflowItem(view.workflow, id)}</ul></div>` : ''}
<h2>Children</h2>
${
  view.children.length === 0
    ? html`<p class="muted">None.</p>`
    : html`<table id="children"><thead><tr><th>State</th><th>Task</th><th>Id</th></tr></thead><tbody>${view.children.map(
        (child) => html`<tr><td>${child.task ? badge(child.task.state) : '-'}</td><td>${child.task?.name ?? '?'}</td><td class="mono"><a href="/tasks/${encodeURIComponent(child.id)}">${child.id}</a></td></tr>`,
      )}</tbody></table>`
}
</div>`;
  return layout(context, { title: `${name ?? 'Task'} ${id}`, section: 'tasks', liveOn: ['tasks'], liveMin: 1000 }, content);
}

export function chartsPage(
  context: PageContext,
  view: { window: string; windows: Array<[string, string]>; name: string | undefined; names: string[]; throughput: SeriesData; failures: SeriesData; percentiles: SeriesData; summary: NameSummary[]; bucketSeconds: number },
): Html {
  const option = (value: string, current: string | undefined, label = value): Html => html`<option value="${value}"${value === (current ?? '') ? ' selected' : ''}>${label}</option>`;
  const content = html`<h1>Charts</h1>
<form class="card row" method="get" action="/charts" data-autosubmit>
  <label>Window<select name="window">${view.windows.map(([value, label]) => option(value, view.window, label))}</select></label>
  <label>Task<select name="name">${option('', view.name, 'every task')}${view.names.map((name) => option(name, view.name))}</select></label>
  <button type="submit">Show</button>
</form>
<div id="charts" data-live>
<div class="charts">
  ${lineChart(view.throughput, { title: 'Throughput (tasks/s)', id: 'chart-throughput' })}
  ${lineChart(view.percentiles, { title: `Runtime percentiles${view.name ? ` of ${view.name}` : ''}`, format: formatSeconds, id: 'chart-runtime' })}
  ${lineChart(view.failures, { title: `Failures (per ${view.bucketSeconds} s)`, id: 'chart-failures' })}
</div>
<h2>By task</h2>
<table id="summary"><thead><tr><th>Task</th><th class="num">Succeeded</th><th class="num">Failed</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th></tr></thead><tbody>${
    view.summary.length === 0
      ? html`<tr><td colspan="6" class="muted">No task ended in this window.</td></tr>`
      : view.summary.map(
          (row) => html`<tr><td><a href="/charts${query({ window: view.window, name: row.name })}">${row.name}</a></td><td class="num">${row.succeeded}</td><td class="num">${row.failed}</td><td class="num">${seconds(row.p50)}</td><td class="num">${seconds(row.p90)}</td><td class="num">${seconds(row.p99)}</td></tr>`,
        )
  }</tbody></table>
</div>`;
  return layout(context, { title: 'Charts', section: 'charts', liveOn: ['tasks'], liveMin: 2000 }, content);
}

export function loginPage(view: { error?: string; next: string; csrf: string }): Html {
  const content = html`<div class="card login">
  <h1>celeriac dashboard</h1>
  ${view.error ? html`<div class="flash error">${view.error}</div>` : ''}
  <form method="post" action="/login" class="row">
    <input type="hidden" name="_csrf" value="${view.csrf}"><input type="hidden" name="next" value="${view.next}">
    <label>Token<input type="password" name="token" autocomplete="current-password" required autofocus size="32"></label>
    <button type="submit" class="primary">Log in</button>
  </form>
</div>`;
  return layout({ csrf: view.csrf, session: false }, { title: 'Log in', section: 'none' }, content);
}

export function errorPage(context: PageContext, status: number, message: string): Html {
  return layout(context, { title: String(status), section: 'none' }, html`<h1>${status}</h1><div class="flash error">${message}</div><p><a href="/">Back to the dashboard</a></p>`);
}

/** One task of the workflow tree and, nested, the tasks it started. */
function workflowItem(node: WorkflowNode, current: string): Html {
  const label = html`${node.state ? badge(node.state) : html`<span class="badge">?</span>`} ${node.name ?? html`<span class="muted">?</span>`} <span class="mono muted">${node.id}</span>`;
  return html`<li data-task-id="${node.id}" data-state="${node.state ?? ''}"${node.id === current ? html` class="current" aria-current="true"` : ''}>${node.id === current ? html`<b>${label}</b>` : html`<a href="/tasks/${encodeURIComponent(node.id)}">${label}</a>`}${
    node.children.length > 0 ? html`<ul>${node.children.map((child) => workflowItem(child, current))}</ul>` : ''
  }</li>`;
}

/** Tasks per second, or `-` when unknown. */
function rate(value: number | null): string {
  if (value === null) return '-';
  return value === 0 ? '0' : value < 0.1 ? value.toFixed(3) : value.toFixed(1);
}

function parentLink(parentId: string | null, parent: TaskInfo | undefined): Html | string {
  if (!parentId) return '-';
  return html`<a href="/tasks/${encodeURIComponent(parentId)}">${parentId}</a>${parent?.name ? html` <span class="muted">${parent.name}</span>` : ''}`;
}

function exceptionText(result: Record<string, unknown>): string | null {
  const type = result['exc_type'];
  if (typeof type !== 'string') return null;
  const message = result['exc_message'];
  const text = Array.isArray(message) ? message.map((part) => (typeof part === 'string' ? part : JSON.stringify(part))).join(', ') : typeof message === 'string' ? message : JSON.stringify(message);
  return `${type}: ${text}`;
}

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? 'null';
  } catch {
    return String(value);
  }
}

function seconds(value: number | null): string {
  return value === null ? '-' : formatSeconds(value);
}

/** The run time the worker reported, else from the timeline (a failure reports none). */
function runtimeOf(task: TaskInfo | undefined): string {
  if (!task) return '-';
  if (task.runtime !== null) return formatSeconds(task.runtime);
  const started = task.timeline.STARTED;
  const ended = task.timeline.FAILURE ?? task.timeline.SUCCESS ?? task.timeline.RETRY;
  return started !== undefined && ended !== undefined && ended >= started ? `${formatSeconds(ended - started)} (from events)` : '-';
}

function firstTime(task: TaskInfo): number | undefined {
  const times = Object.values(task.timeline);
  return times.length === 0 ? undefined : Math.min(...times);
}
