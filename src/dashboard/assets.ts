/**
 * The dashboard's two static files, kept as strings so `tsc` carries them into dist/ with no
 * build step: the script (live updates over server-sent events, local times, filters that
 * apply on change) and the style sheet. Pages work without the script; it only keeps them live.
 */
import { createHash } from 'node:crypto';

/**
 * Live updates: the page names what it shows in `<body data-live-on="tasks workers">`; on such
 * an event from `/events`, the page is fetched again and each `[data-live]` region with an id is
 * swapped for the fresh one, at most once per `data-live-min` ms.
 */
export const SCRIPT = `'use strict';
(function () {
  var body = document.body;
  function localize(root) {
    root.querySelectorAll('time[datetime]').forEach(function (el) {
      var date = new Date(el.getAttribute('datetime'));
      if (!isNaN(date.getTime())) { el.title = el.getAttribute('datetime'); el.textContent = date.toLocaleString(); }
    });
  }
  localize(document);
  document.querySelectorAll('form[data-autosubmit] select').forEach(function (select) {
    select.addEventListener('change', function () { select.form.submit(); });
  });
  var kinds = (body.getAttribute('data-live-on') || '').split(' ').filter(Boolean);
  var status = document.getElementById('live-status');
  if (kinds.length === 0 || !window.EventSource) { if (status) status.textContent = ''; return; }
  var minGap = Number(body.getAttribute('data-live-min') || '300');
  var busy = false, again = false, last = 0, timer = null;
  function schedule() {
    if (busy) { again = true; return; }
    if (timer) return;
    var wait = Math.max(0, last + minGap - Date.now());
    timer = setTimeout(function () { timer = null; refresh(); }, wait);
  }
  function refresh() {
    busy = true; last = Date.now();
    fetch(location.href, { credentials: 'same-origin', headers: { 'X-Celeriac-Live': '1' } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, 'text/html');
        document.querySelectorAll('[data-live][id]').forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) { el.replaceWith(next); localize(next); }
        });
        body.setAttribute('data-refreshed', String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; schedule(); } });
  }
  var source = new EventSource('/events');
  source.onopen = function () { if (status) { status.textContent = 'live'; status.className = 'live on'; } body.setAttribute('data-live-connected', '1'); };
  source.onerror = function () { if (status) { status.textContent = 'reconnecting'; status.className = 'live off'; } };
  kinds.forEach(function (kind) { source.addEventListener(kind, schedule); });
})();
`;

export const STYLE = `:root { --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb; --card: #fff; --accent: #2e6bd6;
  --ok: #1a7f37; --bad: #c62828; --warn: #b26b00; --info: #2e6bd6; --revoked: #7b3fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 20px; padding: 10px 20px; background: #17202e; color: #fff; }
header a { color: #cfd8e6; text-decoration: none; }
header a.current, header a:hover { color: #fff; }
header .brand { font-weight: 700; color: #fff; margin-right: 8px; }
header .spacer { flex: 1; }
header form { margin: 0; }
header button { background: transparent; color: #cfd8e6; border: 1px solid #4b5669; }
main { padding: 18px 20px 40px; max-width: 1500px; }
h1 { font-size: 20px; margin: 0 0 14px; }
h2 { font-size: 16px; margin: 22px 0 10px; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: #fbfcfd; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
td.clip { max-width: 280px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
pre { background: #0f1521; color: #e6edf3; padding: 12px; overflow: auto; border-radius: 6px; font-size: 12.5px; max-height: 480px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px; margin-bottom: 14px; }
.workflow, .workflow ul { list-style: none; margin: 0; padding-left: 0; } .workflow ul { margin-left: 9px; padding-left: 14px; border-left: 1px solid var(--line); } .workflow li { padding: 2px 0; } .workflow li.current > b { background: #fffbe6; }
.row { display: flex; gap: 14px; flex-wrap: wrap; align-items: flex-end; }
.stats { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 14px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.stat b { display: block; font-size: 20px; }
.stat span { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef1f5; color: var(--muted); }
.badge.SUCCESS, .badge.online { background: #e3f4e8; color: var(--ok); }
.badge.FAILURE, .badge.REJECTED, .badge.offline { background: #fde8e8; color: var(--bad); }
.badge.RETRY { background: #fff3dc; color: var(--warn); }
.badge.STARTED, .badge.RECEIVED { background: #e6eefc; color: var(--info); }
.badge.REVOKED { background: #f1e8fa; color: var(--revoked); }
form.inline { display: inline-flex; gap: 6px; align-items: center; margin: 0 8px 6px 0; }
label { color: var(--muted); font-size: 12px; display: flex; flex-direction: column; gap: 3px; }
input, select, button { font: inherit; padding: 5px 8px; border: 1px solid #c9d0da; border-radius: 5px; background: #fff; color: var(--fg); }
input[type=number] { width: 70px; }
button { cursor: pointer; background: #f3f5f8; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { background: #fff; border-color: #e3a3a3; color: var(--bad); }
button.danger.primary { background: var(--bad); border-color: var(--bad); color: #fff; }
.flash { padding: 9px 12px; border-radius: 6px; margin-bottom: 14px; background: #e6eefc; border: 1px solid #bcd0f5; }
.flash.error { background: #fde8e8; border-color: #f2b8b8; }
.muted { color: var(--muted); }
.pager { display: flex; gap: 12px; align-items: center; margin: 10px 0; }
.live { font-size: 12px; padding: 1px 8px; border-radius: 10px; }
.live.on { background: #1a7f37; color: #fff; }
.live.off { background: #b26b00; color: #fff; }
dl.props { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; margin: 0; }
dl.props dt { color: var(--muted); }
dl.props dd { margin: 0; word-break: break-all; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
svg.chart { width: 100%; height: auto; background: var(--card); }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.login { max-width: 380px; margin: 80px auto; }
`;

/** Content hashes, for URLs that can be cached for ever. */
export const SCRIPT_VERSION = createHash('sha256').update(SCRIPT).digest('hex').slice(0, 12);
export const STYLE_VERSION = createHash('sha256').update(STYLE).digest('hex').slice(0, 12);
