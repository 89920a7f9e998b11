// The delivery dashboard: attempts of the last hour (per minute) or day (per hour), of every
// webhook or one, from one call to `/stats/deliveries`: totals as text, a stacked bar chart of
// succeeded and failed attempts per bucket, and a line chart of the p50 and p95 latency. The
// charts are inline SVG built here (no library); colours come from style.css (the CSP allows
// no inline style), at the width of their container. It refreshes every 10 s while the page is
// visible.

import { api, qs } from '../api.js';
import { h, svg, field, select, banner, showError, poll } from '../dom.js';

const WINDOWS = [['1h', 'Last hour'], ['24h', 'Last day']];
const POLL_MS = 10000;
/** The charts' height in pixels and the room for the axes; the width is the container's. */
const H = 240;
const PAD = { left: 56, right: 12, top: 12, bottom: 40 };

export async function render(ctx) {
  const q = ctx.query;
  const win = WINDOWS.some(([v]) => v === q.get('window')) ? q.get('window') : '1h';
  const err = banner();
  const windowSel = select(WINDOWS, { name: 'window', value: win });
  const webhook = select([['', 'All webhooks']], { name: 'webhook_id' });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('Window', windowSel, { name: 'window' }), field('Webhook', webhook, { name: 'webhook_id' }));
  const summary = h('dl', { class: 'facts' });
  const empty = h('p', { class: 'empty', hidden: true }, 'No attempts in this window.');
  const bars = h('figure', { class: 'chart' });
  const lines = h('figure', { class: 'chart' });
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), h('span', { class: 'muted live' }, 'Updates every 10 s')),
    filters, err,
    h('section', { class: 'card', 'aria-label': 'Totals' }, summary, empty),
    h('section', { class: 'card' }, h('h2', {}, 'Attempts: succeeded and failed'), bars),
    h('section', { class: 'card' }, h('h2', {}, 'Attempt latency'), lines));

  try {
    const hooks = await api('GET', '/webhooks?limit=1000');
    for (const w of hooks.data) webhook.append(h('option', { value: w.id }, w.name));
    webhook.value = q.get('webhook_id') ?? '';
  } catch (e) { showError(ctx.main, e, err); }
  const go = () => {
    location.hash = '#/dashboard' + qs({ window: windowSel.value, webhook_id: webhook.value });
  };
  windowSel.addEventListener('change', go);
  webhook.addEventListener('change', go);
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); go(); });

  const path = '/stats/deliveries' + qs({ window: win, webhook_id: q.get('webhook_id') });
  let last = null;
  const draw = (stats) => {
    bars.replaceChildren(barChart(stats, width(bars)), legend([['succeeded', 'Succeeded'], ['failed', 'Failed']]));
    lines.replaceChildren(latencyChart(stats, width(lines)), legend([['p50', 'p50 latency'], ['p95', 'p95 latency']]));
  };
  const load = async () => {
    last = await api('GET', path);
    const totals = showSummary(summary, last);
    empty.hidden = totals.attempts > 0;
    draw(last);
  };
  try { await load(); } catch (e) { showError(ctx.main, e, err); }
  poll(ctx, POLL_MS, load);
  // Drawn at the container's width: again when that changes (before the next paint).
  let drawnAt = width(bars);
  const resized = new ResizeObserver(() => {
    if (!last || width(bars) === drawnAt) return;
    drawnAt = width(bars);
    draw(last);
  });
  resized.observe(bars);
  ctx.onLeave(() => resized.disconnect());
}

/** The window's totals as text (`data-total` names each), returned as numbers. */
function showSummary(dl, stats) {
  const sum = (k) => stats.buckets.reduce((n, b) => n + b[k], 0);
  const t = { attempts: sum('attempts'), succeeded: sum('succeeded'), failed: sum('failed') };
  const p95s = stats.buckets.map((b) => b.latency_p95_ms).filter((v) => v != null);
  const rate = t.attempts ? `${Math.round((100 * t.succeeded) / t.attempts)} %` : '—';
  const fact = (key, label, value) => h('div', {}, h('dt', {}, label), h('dd', { 'data-total': key }, String(value)));
  dl.replaceChildren(
    fact('attempts', 'Attempts', t.attempts),
    fact('succeeded', 'Succeeded', t.succeeded),
    fact('failed', 'Failed', t.failed),
    fact('success_rate', 'Success rate', rate),
    fact('peak_p95', 'Highest p95', p95s.length ? `${Math.max(...p95s)} ms` : '—'));
  return t;
}

/** The width to draw a chart in: its container's, so the axis text keeps its size. */
const width = (el) => Math.max(300, Math.min(1400, el.clientWidth || 720));

/** A legend: one swatch (coloured by its class) and label per series. */
function legend(series) {
  return h('figcaption', {}, h('ul', { class: 'legend' },
    series.map(([cls, label]) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), label))));
}

/** Time of day of a bucket: `14:05` (the date shows only for the day window's first bucket). */
function label(iso, withDate) {
  const d = new Date(iso);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return withDate ? `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}` : time;
}

/** A round top for the y axis, at least 1. */
function niceMax(v) {
  if (v <= 1) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * step).find((m) => m >= v);
}

/** The frame both charts share: y axis with ticks and its title, x axis with a few times. */
function frame(stats, W, yMax, yTitle, title) {
  const n = stats.buckets.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (i * plotW) / n;
  const y = (v) => PAD.top + plotH - (v / yMax) * plotH;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart-svg', 'aria-label': title },
    svg('title', {}, title));
  const axes = svg('g', { class: 'axis' });
  for (const v of [0, yMax / 2, yMax]) {
    axes.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: v ? 'grid' : 'base' }),
      svg('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  // About one time label per 90 px.
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 90))));
  stats.buckets.forEach((b, i) => {
    if (i !== n - 1 && (i % every || n - 1 - i < every / 2)) return;
    axes.append(svg('text', { x: x(i) + plotW / n / 2, y: H - PAD.bottom + 16, 'text-anchor': 'middle' },
      label(b.start, i === 0 && stats.window === '24h')));
  });
  axes.append(
    svg('text', { x: 12, y: PAD.top + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${PAD.top + plotH / 2})` }, yTitle),
    svg('text', { x: PAD.left + plotW / 2, y: H - 4, 'text-anchor': 'middle' },
      stats.window === '24h' ? 'Hour started (local time)' : 'Minute started (local time)'));
  root.append(axes);
  return { root, x, y, slot: plotW / n };
}

const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** Stacked bars per bucket: succeeded at the bottom, failed on top; one `rect` per non-zero count. */
function barChart(stats, W) {
  const max = niceMax(Math.max(0, ...stats.buckets.map((b) => b.attempts)));
  const { root, x, y, slot } = frame(stats, W, max, 'Attempts', 'Succeeded and failed attempts per bucket');
  const g = svg('g', { class: 'bars' });
  const width = Math.max(1, slot * 0.8);
  stats.buckets.forEach((b, i) => {
    let base = 0;
    for (const kind of ['succeeded', 'failed']) {
      const count = b[kind];
      if (!count) continue;
      g.append(svg('rect', {
        class: kind, x: x(i) + (slot - width) / 2, width, y: y(base + count), height: y(base) - y(base + count),
        'data-kind': kind, 'data-count': count, 'data-start': b.start,
      }, svg('title', {}, `${label(b.start, stats.window === '24h')}: ${count} ${kind}`)));
      base += count;
    }
  });
  root.append(g);
  return root;
}

/** p50 and p95 latency per bucket as lines, broken where a bucket has no latency. */
function latencyChart(stats, W) {
  const values = stats.buckets.flatMap((b) => [b.latency_p50_ms, b.latency_p95_ms]).filter((v) => v != null);
  const max = niceMax(Math.max(0, ...values));
  const { root, x, y, slot } = frame(stats, W, max, 'Latency (ms)', 'p50 and p95 attempt latency per bucket');
  for (const [key, cls] of [['latency_p50_ms', 'p50'], ['latency_p95_ms', 'p95']]) {
    let d = '';
    let open = false;
    const g = svg('g', { class: `series ${cls}` });
    stats.buckets.forEach((b, i) => {
      const v = b[key];
      if (v == null) { open = false; return; }
      const cx = x(i) + slot / 2;
      d += `${open ? 'L' : 'M'}${cx.toFixed(1)} ${y(v).toFixed(1)} `;
      open = true;
      g.append(svg('circle', { cx, cy: y(v), r: 2.5, 'data-series': cls, 'data-ms': v },
        svg('title', {}, `${label(b.start, stats.window === '24h')}: ${cls} ${v} ms`)));
    });
    if (d) g.prepend(svg('path', { d: d.trim(), class: 'line' }));
    root.append(g);
  }
  return root;
}
