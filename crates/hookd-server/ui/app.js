// The app shell: hash routing (`#/webhooks/wh_...`), the sign-in guard and the navigation.
// A page is a module exporting `render(ctx)`; adding one is one import and one entry in ROUTES,
// plus a link in index.html's nav (and its files in `src/http/ui.rs`).

import { token, signOut } from './api.js';
import * as signin from './pages/signin.js';
import * as dashboard from './pages/dashboard.js';
import * as webhooks from './pages/webhooks.js';
import * as webhookForm from './pages/webhook_form.js';
import * as deliveries from './pages/deliveries.js';
import * as events from './pages/events.js';
import * as schedules from './pages/schedules.js';
import * as inbound from './pages/inbound.js';
import * as executions from './pages/executions.js';

/** [pattern, page, nav section, title]; `:id` captures one path segment. */
const ROUTES = [
  ['/signin', signin.render, null, 'Sign in'],
  ['/dashboard', dashboard.render, 'dashboard', 'Dashboard'],
  ['/webhooks', webhooks.render, 'webhooks', 'Webhooks'],
  ['/webhooks/new', webhookForm.render, 'webhooks', 'New webhook'],
  ['/webhooks/:id', webhookForm.render, 'webhooks', 'Webhook'],
  ['/deliveries', deliveries.renderList, 'deliveries', 'Deliveries'],
  ['/deliveries/:id', deliveries.renderDetail, 'deliveries', 'Delivery'],
  ['/events', events.renderList, 'events', 'Events'],
  ['/events/:id', events.renderDetail, 'events', 'Event'],
  ['/schedules', schedules.renderList, 'schedules', 'Schedules'],
  ['/schedules/new', schedules.renderForm, 'schedules', 'New schedule'],
  ['/schedules/:id', schedules.renderForm, 'schedules', 'Schedule'],
  ['/inbound', inbound.renderList, 'inbound', 'Inbound hooks'],
  ['/inbound/new', inbound.renderForm, 'inbound', 'New inbound hook'],
  ['/inbound/:id', inbound.renderForm, 'inbound', 'Inbound hook'],
  ['/inbound/:id/executions', executions.renderList, 'inbound', 'Executions'],
  ['/executions/:id', executions.renderDetail, 'inbound', 'Execution'],
];

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, page, nav, title] of ROUTES) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (want.every((w, i) => (w.startsWith(':') ? (params[w.slice(1)] = decodeURIComponent(parts[i])) : w === parts[i]))) {
      return { page, nav, title, params };
    }
  }
  return null;
}

let leave = [];

function route() {
  for (const f of leave) f();
  leave = [];
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const main = document.getElementById('main');
  const signedIn = !!token();
  document.getElementById('nav').hidden = !signedIn;
  if (!signedIn && path !== '/signin') {
    const next = path && path !== '/' ? `?next=${encodeURIComponent(path)}` : '';
    location.replace(`#/signin${next}`);
    return;
  }
  const m = match(path || '/') || (signedIn ? null : match('/signin'));
  if (!m) {
    location.replace('#/webhooks');
    return;
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === m.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${m.title} · hookd`;
  // Each visit renders into its own view: a page still loading when the user moves on writes
  // into a detached element, and its timers stop.
  const view = document.createElement('div');
  main.replaceChildren(view);
  // Screen readers start at the new page; a page may then focus its first control.
  main.focus({ preventScroll: true });
  let left = false;
  const mine = [];
  leave.push(() => { left = true; for (const f of mine) f(); });
  const ctx = {
    main: view,
    params: m.params,
    query: new URLSearchParams(query),
    setTitle: (t) => { if (!left) document.title = `${t} · hookd`; },
    onLeave: (f) => (left ? f() : mine.push(f)),
  };
  Promise.resolve(m.page(ctx)).catch((e) => {
    if (e?.status === 401) return;
    view.append(Object.assign(document.createElement('p'), { className: 'banner', role: 'alert', textContent: e.message }));
  });
}

document.getElementById('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);
route();
