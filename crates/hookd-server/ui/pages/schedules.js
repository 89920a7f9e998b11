// Schedules: the list (timing in words, next and last run, a mark on those whose last firing
// failed, "Load more"), and one schedule's form (webhook, cron in a time zone or every N seconds,
// message template) with a live preview of the request its next firing sends, beside its next
// five run times, its last error, Run now and delete. The side panel is refreshed every 5 s
// while the page is visible.

import { api, qs } from '../api.js';
import { h, pagedTable, field, input, textarea, select, when, poll, banner, showError, clearErrors, nextId, replace } from '../dom.js';
import { confirmDialog } from './webhook_form.js';
import { previewPanel } from './webhook_preview.js';

const POLL_MS = 5000;
/** Offered in the time zone field; any IANA name is accepted. */
const ZONES = ['UTC', 'Europe/London', 'Europe/Dublin', 'Europe/Lisbon', 'Europe/Paris', 'Europe/Berlin',
  'Europe/Amsterdam', 'Europe/Brussels', 'Europe/Madrid', 'Europe/Rome', 'Europe/Zurich', 'Europe/Vienna',
  'Europe/Stockholm', 'Europe/Warsaw', 'Europe/Athens', 'Europe/Helsinki', 'Europe/Istanbul', 'Europe/Moscow',
  'America/New_York', 'America/Toronto', 'America/Chicago', 'America/Denver', 'America/Phoenix',
  'America/Los_Angeles', 'America/Mexico_City', 'America/Sao_Paulo', 'America/Buenos_Aires',
  'Africa/Lagos', 'Africa/Cairo', 'Africa/Johannesburg', 'Africa/Nairobi', 'Asia/Dubai', 'Asia/Karachi',
  'Asia/Kolkata', 'Asia/Bangkok', 'Asia/Singapore', 'Asia/Hong_Kong', 'Asia/Shanghai', 'Asia/Seoul',
  'Asia/Tokyo', 'Australia/Perth', 'Australia/Sydney', 'Pacific/Auckland'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

export async function renderList(ctx) {
  const err = banner();
  const empty = h('p', { class: 'empty', hidden: true }, 'No schedules yet. ',
    h('a', { href: '#/schedules/new' }, 'Create the first one'), '.');
  const { el, more, loadPage } = pagedTable({
    columns: ['Name', 'Webhook', 'Timing', 'Active', 'Next run', 'Last run'],
    caption: 'Schedules',
    empty,
    fetchPage: (cursor) => api('GET', '/schedules' + qs({ cursor })),
    rows: (data) => data.map(row),
    root: ctx.main,
    err,
  });
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedules'),
      h('a', { class: 'button', href: '#/schedules/new' }, 'New schedule')),
    err, el, empty, more);
  const names = await webhookNames().catch((e) => { showError(ctx.main, e, err); return new Map(); });

  const row = (s) => h('tr', {},
    h('td', {}, h('a', { href: `#/schedules/${encodeURIComponent(s.id)}` }, s.name),
      s.last_error ? [' ', h('span', { class: 'badge off', title: s.last_error }, 'failing')] : null),
    h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(s.webhook_id)}` }, names.get(s.webhook_id) ?? s.webhook_id)),
    h('td', {}, timing(s)),
    h('td', {}, s.active ? h('span', { class: 'badge on' }, 'active') : h('span', { class: 'badge off' }, 'paused')),
    h('td', {}, s.next_run_at ? when(s.next_run_at) : '—'),
    h('td', {}, when(s.last_run_at)));
  await loadPage();
}

async function webhookNames() {
  const hooks = await api('GET', '/webhooks?limit=1000');
  return new Map(hooks.data.map((w) => [w.id, w.name]));
}

/** A schedule's timing in words: "daily at 02:00 (Europe/Paris)", "every 1 h 30 min". */
export function timing(s) {
  if (s.every_seconds != null) return `every ${duration(s.every_seconds)}`;
  const words = describeCron(s.cron);
  const zone = s.timezone || 'UTC';
  return h('span', {}, words ? `${words}, ${zone} time · ` : `${zone} time · `, h('code', {}, s.cron));
}

/** "1 h 30 min", "45 s", "2 d". */
function duration(seconds) {
  const parts = [];
  let s = seconds;
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]]) {
    if (s >= n) { parts.push(`${Math.floor(s / n)} ${unit}`); s %= n; }
  }
  return parts.join(' ') || '0 s';
}

/** Words for the common cron shapes; null for the rest (the expression is shown anyway). */
function describeCron(cron) {
  const f = (cron || '').trim().split(/\s+/);
  if (f.length !== 5) return null;
  const [min, hour, dom, mon, dow] = f;
  const num = (v) => /^\d+$/.test(v);
  const at = () => `at ${hour.padStart(2, '0')}:${min.padStart(2, '0')}`;
  if (dom !== '*' || mon !== '*') return null;
  if (num(min) && num(hour)) {
    if (dow === '*') return `daily ${at()}`;
    if (dow === '1-5' || dow === 'MON-FRI') return `weekdays ${at()}`;
    if (num(dow) && Number(dow) <= 7) return `${DAYS[Number(dow) % 7]}s ${at()}`;
    return null;
  }
  if (dow !== '*') return null;
  if (num(min) && hour === '*') return `hourly at :${min.padStart(2, '0')}`;
  const step = /^\*\/(\d+)$/.exec(min);
  if (step && hour === '*') return `every ${step[1]} min`;
  if (min === '*' && hour === '*') return 'every minute';
  return null;
}

/** The day of the week of `iso` in `zone` (UTC without one): "Mon". */
function weekday(iso, zone) {
  try {
    return new Date(iso).toLocaleDateString('en', { weekday: 'short', timeZone: zone || 'UTC' });
  } catch { return ''; }
}

/** "in 3 h 12 min" / "5 min ago": to the second under a minute, the hour beyond a day. */
function relative(iso) {
  const secs = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 5) return 'just now';
  const unit = abs < 60 ? 1 : abs < 86400 ? 60 : 3600;
  const d = duration(abs - (abs % unit));
  return secs >= 0 ? `in ${d}` : `${d} ago`;
}

const NEW = { name: '', description: null, active: true, webhook_id: '', message: null, cron: '0 * * * *', timezone: null, every_seconds: null };

export async function renderForm(ctx) {
  const id = ctx.params.id;
  const path = id ? `/schedules/${encodeURIComponent(id)}` : null;
  const [saved, hooks] = await Promise.all([id ? api('GET', path) : null, api('GET', '/webhooks?limit=1000')]);
  if (saved) ctx.setTitle(saved.name);
  const s = saved || { ...NEW, webhook_id: ctx.query.get('webhook_id') ?? '' };
  const f = controls(s, hooks.data);
  const err = banner();
  const notice = h('p', { class: 'notice', role: 'status', hidden: !ctx.query.get('created') }, 'Schedule created.');
  const cronPart = h('div', { class: 'grid' },
    field('Cron expression', f.cron, { name: 'cron', hint: 'minute hour day-of-month month day-of-week, e.g. 0 2 * * * for 02:00 every day.' }),
    field('Time zone', f.timezone, { name: 'timezone', hint: 'IANA name the cron is read in; blank means UTC.' }), f.zones);
  const everyPart = field('Every (seconds)', f.every_seconds, { name: 'every_seconds', hint: '1 to 31536000 (a year); the first run is one interval from now.' });
  const showTiming = () => {
    cronPart.hidden = !f.modeCron.checked;
    everyPart.hidden = f.modeCron.checked;
  };
  f.modeCron.addEventListener('change', showTiming);
  f.modeEvery.addEventListener('change', showTiming);
  showTiming();
  const noHooks = hooks.data.length ? null
    : h('p', { class: 'banner' }, 'A schedule sends to a webhook: ', h('a', { href: '#/webhooks/new' }, 'create a webhook'), ' first.');
  const form = h('form', { class: 'card schedule-form', novalidate: true },
    err, noHooks,
    h('div', { class: 'grid' },
      field('Name', f.name, { name: 'name' }),
      field('Webhook', f.webhook, { name: 'webhook_id', hint: 'Its URL, auth, headers and signature apply.' })),
    field('Description', f.description, { name: 'description' }),
    h('fieldset', {}, h('legend', {}, 'Runs'),
      h('div', { class: 'radios' }, field('On a cron expression', f.modeCron), field('Every N seconds', f.modeEvery)),
      cronPart, everyPart),
    field('Message template', f.message, { name: 'message',
      hint: 'Optional request body, e.g. {"text": "{{ data.name }} fired"}. Blank: the webhook\'s own body for a schedule.fired event.' }),
    field('Active', f.active, { name: 'active', hint: 'A paused schedule plans no runs; Run now still works.' }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, saved ? 'Save changes' : 'Create schedule'),
      h('a', { href: '#/schedules', class: 'button secondary' }, 'Cancel')));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    notice.hidden = true;
    try {
      const body = wire(f);
      if (!saved) {
        const made = await api('POST', '/schedules', body);
        location.hash = `#/schedules/${encodeURIComponent(made.id)}?created=1`;
        return;
      }
      // The whole form: PATCH merges it, `null` drops description/message, and the timing
      // given replaces the other kind.
      side.show(await api('PATCH', path, body));
      ctx.setTitle(body.name);
      notice.textContent = 'Saved.';
      notice.hidden = false;
    } catch (e) {
      const control = showError(form, e, err);
      (control || err).scrollIntoView({ block: 'center' });
      control?.focus();
    }
  });

  const preview = previewPanel(form, () => ['/schedules/preview', wire(f)],
    'The request the next firing sends (signature headers differ per delivery).');
  const side = saved ? sidePanel(ctx, saved) : { el: help() };
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, saved ? saved.name : 'New schedule'),
      saved ? h('a', { href: `#/deliveries?webhook_id=${encodeURIComponent(saved.webhook_id)}` }, 'Deliveries of its webhook') : null),
    notice,
    h('div', { class: 'split' }, h('div', {}, form, preview.el), h('aside', { class: saved ? 'side side-first' : 'side' }, side.el)));
  preview.refresh();
  if (!saved) f.name.focus();
}

/** Beside a new schedule's form: cron examples and what a message template can use. */
function help() {
  const ex = (cron, words) => [h('dt', {}, h('code', {}, cron)), h('dd', {}, words)];
  const v = (name, words) => [h('dt', {}, h('code', {}, name)), h('dd', {}, words)];
  return h('section', { class: 'card', 'aria-labelledby': 'help-h' }, h('h2', { id: 'help-h' }, 'How it runs'),
    h('p', {}, 'After saving, the next five run times are shown here.'),
    h('h3', {}, 'Cron examples'),
    h('dl', { class: 'summary' }, ex('*/15 * * * *', 'every 15 minutes'), ex('0 9 * * 1-5', 'weekdays at 09:00'),
      ex('30 2 * * 0', 'Sundays at 02:30'), ex('0 0 1 * *', 'the 1st of each month at midnight')),
    h('h3', {}, 'In the message template'),
    h('dl', { class: 'summary' }, v('schedule.name', 'the schedule\'s name (also schedule.id)'),
      v('schedule.occurrence', 'the run time (RFC 3339, UTC)'), v('schedule.skipped', 'runs missed while hookd was down'),
      v('data.name', 'the schedule\'s name, in the event'), v('data.occurrence', 'the run time (RFC 3339, UTC)'),
      v('data.schedule_id', 'its id'), v('data.manual', 'true for Run now'), v('data.skipped', 'runs missed while hookd was down'),
      v('data.description', 'its description, when given')),
    h('p', { class: 'hint' }, 'Booleans print as True/False: use {{ data.manual | tojson }} inside JSON.'));
}

/** The form controls, filled from `s`. */
function controls(s, hooks) {
  const zones = h('datalist', { id: nextId('zones') });
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const z of [...new Set([mine, ...ZONES].filter(Boolean))]) zones.append(h('option', { value: z }));
  const radio = (checked) => input({ type: 'radio', name: nextId('timing'), checked });
  const isCron = s.every_seconds == null;
  const modeCron = radio(isCron);
  const modeEvery = radio(!isCron);
  modeEvery.name = modeCron.name;
  const webhook = select([['', 'Choose a webhook…'], ...hooks.map((w) => [w.id, w.name])], { required: true });
  webhook.value = s.webhook_id;
  return {
    name: input({ value: s.name, required: true, autocomplete: 'off' }),
    webhook,
    description: input({ value: s.description ?? '', autocomplete: 'off' }),
    modeCron,
    modeEvery,
    cron: input({ value: s.cron ?? '', class: 'code', autocomplete: 'off', spellcheck: 'false', placeholder: '0 2 * * *' }),
    timezone: input({ value: s.timezone ?? (mine || 'UTC'), list: zones.id, autocomplete: 'off', spellcheck: 'false', placeholder: 'UTC' }),
    zones,
    every_seconds: input({ type: 'number', min: '1', inputmode: 'numeric', value: s.every_seconds ?? '', placeholder: '3600' }),
    message: textarea({ rows: 5, class: 'code', value: s.message ?? '', placeholder: '{"text": "{{ data.name }} fired"}' }),
    active: input({ type: 'checkbox', checked: s.active }),
  };
}

/** The form as the API's `ScheduleIn`. */
function wire(f) {
  const out = {
    name: f.name.value.trim(),
    description: f.description.value.trim() || null,
    active: f.active.checked,
    webhook_id: f.webhook.value,
    message: f.message.value.trim() ? f.message.value : null,
  };
  if (!out.webhook_id) throw fieldError('webhook_id', 'choose the webhook to send to');
  if (f.modeCron.checked) {
    out.cron = f.cron.value.trim();
    out.timezone = f.timezone.value.trim() || 'UTC';
  } else {
    const v = f.every_seconds.value.trim();
    if (!/^\d+$/.test(v)) throw fieldError('every_seconds', 'must be a whole number of seconds');
    out.every_seconds = Number(v);
  }
  return out;
}

function fieldError(name, message) {
  return { body: { error: { field: name, message: `${name}: ${message}` } } };
}

/** Next runs, last run, Run now and delete; `show(s)` redraws from a fresh schedule. */
function sidePanel(ctx, s) {
  const path = `/schedules/${encodeURIComponent(s.id)}`;
  const err = banner();
  const runs = h('ol', { class: 'next-runs' });
  const facts = h('dl', { class: 'summary' });
  const result = h('p', { class: 'notice run-result', role: 'status', hidden: true });
  const run = h('button', { type: 'button' }, 'Run now');
  const show = (fresh) => {
    Object.assign(s, fresh);
    replace(facts, h('dt', {}, 'Timing'), h('dd', {}, timing(s)),
      h('dt', {}, 'Last run'), h('dd', {}, s.last_run_at ? `${when(s.last_run_at)} (${relative(s.last_run_at)})` : 'never'),
      s.last_error ? [h('dt', {}, 'Last error'), h('dd', { class: 'bad last-error' }, s.last_error)] : null);
    runs.replaceChildren(...s.next_runs.map((t) => h('li', {}, h('time', { datetime: t, class: 'mono' }, t),
      ' ', h('span', { class: 'muted' }, `${weekday(t, s.timezone)}, ${relative(t)}`))));
    runs.hidden = !s.next_runs.length;
    zoneNote.textContent = s.cron ? `In ${s.timezone || 'UTC'} time.` : 'In UTC.';
    paused.hidden = s.active;
  };
  const zoneNote = h('p', { class: 'hint' });
  const paused = h('p', { class: 'empty' }, 'Paused: no runs are planned until it is active again.');
  run.addEventListener('click', async () => {
    run.disabled = true;
    clearErrors(panel);
    try {
      const r = await api('POST', `${path}/run`);
      replace(result, 'Queued delivery ', h('a', { href: `#/deliveries/${encodeURIComponent(r.delivery_id)}` }, r.delivery_id),
        ' of event ', h('a', { href: `#/events/${encodeURIComponent(r.event_id)}` }, r.event_id), '.');
      result.hidden = false;
      show(await api('GET', path));
    } catch (e) { showError(panel, e, err); } finally { run.disabled = false; }
  });
  const del = h('button', { type: 'button', class: 'danger', onclick: () => confirmDialog(
    `Delete schedule “${s.name}”?`, 'It stops firing; deliveries it already queued are kept. This cannot be undone.', 'Delete',
    async () => { await api('DELETE', path); location.hash = '#/schedules'; }) }, 'Delete schedule');
  const panel = h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'runs-h' }, h('h2', { id: 'runs-h' }, 'Next runs'),
      zoneNote, runs, paused, facts),
    h('section', { class: 'card', 'aria-labelledby': 'run-h' }, h('h2', { id: 'run-h' }, 'Run now'),
      h('p', { class: 'hint' }, 'Sends the message once, now, without moving the next run.'), err,
      h('div', { class: 'actions' }, run), result),
    h('section', { class: 'card', 'aria-labelledby': 'danger-h' }, h('h2', { id: 'danger-h' }, 'Danger zone'), del));
  show(s);
  poll(ctx, POLL_MS, async () => show(await api('GET', path)));
  return { el: panel, show };
}
