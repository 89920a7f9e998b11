// Sign in with an admin token, checked against the API before it is kept.

import { api, signIn, takeFlash } from '../api.js';
import { h, field, input } from '../dom.js';

export function render(ctx) {
  const tokenInput = input({ type: 'password', name: 'token', autocomplete: 'current-password', required: true });
  const msg = h('p', { class: 'banner', role: 'alert', hidden: true });
  const flash = takeFlash();
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card signin', novalidate: true },
    h('h1', {}, 'Sign in to hookd'),
    flash ? h('p', { class: 'notice' }, flash) : null,
    field('Admin token', tokenInput, { hint: ['The token hookd printed on its first start, or one from ', h('code', {}, 'hookd token create'), '.'] }),
    msg, h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = tokenInput.value.trim();
    msg.hidden = true;
    if (!t) {
      msg.textContent = 'Enter an admin token.';
      msg.hidden = false;
      tokenInput.focus();
      return;
    }
    button.disabled = true;
    try {
      await api('GET', '/webhooks?limit=1', undefined, { token: t });
      signIn(t);
      const next = ctx.query.get('next');
      location.hash = '#' + (next && next.startsWith('/') && next !== '/signin' ? next : '/webhooks');
    } catch (e) {
      msg.textContent = e.status === 401 ? 'That token was not accepted.' : e.message;
      msg.hidden = false;
      tokenInput.setAttribute('aria-invalid', 'true');
      tokenInput.focus();
    } finally {
      button.disabled = false;
    }
  });
  ctx.main.append(form);
  tokenInput.focus();
}
