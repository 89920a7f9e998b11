// The live preview of the exact request (method, URL, headers, body) for an editable sample
// event, and the Test button that sends the saved webhook to its receiver.

import { api } from '../api.js';
import { h, field, input, textarea, debounce, pre, pretty, table, replace } from '../dom.js';

/** The sample event editor; `read()` returns the event or throws naming the bad field. */
export function sampleEvent(firstType) {
  const type = input({ value: firstType && !firstType.includes('*') ? firstType : 'webhook.test' });
  const model = input({ placeholder: 'optional' });
  const data = textarea({ rows: 5, class: 'code', value: '{\n  "id": 1,\n  "name": "example"\n}' });
  const el = h('fieldset', {}, h('legend', {}, 'Sample event'),
    h('div', { class: 'grid' }, field('Event type', type, { name: 'event.type' }), field('Model', model, { name: 'event.model' })),
    field('Data (JSON)', data, { name: 'event.data' }));
  const read = () => {
    let parsed;
    try { parsed = JSON.parse(data.value || '{}'); } catch (e) {
      throw { body: { error: { field: 'event.data', message: `event.data: not valid JSON (${e.message})` } } };
    }
    const ev = { type: type.value.trim(), data: parsed };
    if (model.value.trim()) ev.model = model.value.trim();
    return ev;
  };
  return { el, read };
}

/**
 * The preview panel. `request()` returns `[path, body]` to POST, or throws a field error.
 * Recomputed, debounced, whenever `form` changes; `note` says what is shown.
 */
export function previewPanel(form, request, note = 'The request a delivery of the sample event sends (signature headers differ per delivery).') {
  const status = h('p', { class: 'muted', role: 'status' }, 'Fill in the form to see the request.');
  const line = h('p', { class: 'request-line' });
  const { el: headersTable, tbody } = table(['Header', 'Value'], 'Request headers');
  const body = pre('', 'Request body');
  const out = h('div', { hidden: true }, line, headersTable, h('h3', {}, 'Body'), body);
  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    let path;
    let payload;
    try { [path, payload] = request(); } catch (e) { return show(e); }
    try {
      const p = await api('POST', path, payload);
      if (mine !== seq) return;
      status.textContent = note;
      status.classList.remove('bad');
      line.replaceChildren(h('strong', {}, p.method), ' ', h('span', { class: 'url' }, p.url));
      tbody.replaceChildren(...p.headers.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'mono' }, v))));
      body.textContent = pretty(p.body);
      out.hidden = false;
    } catch (e) {
      if (mine === seq) show(e);
    }
  };
  const show = (e) => {
    const hint = e?.hint;
    status.textContent = hint || `Cannot preview: ${e?.body?.error?.message || e.message}`;
    status.classList.toggle('bad', !hint);
    out.hidden = true;
  };
  const later = debounce(refresh, 350);
  form.addEventListener('input', later);
  form.addEventListener('change', later);
  const el = h('section', { class: 'card preview', 'aria-labelledby': 'preview-h' },
    h('h2', { id: 'preview-h' }, 'Live preview'), status, out);
  return { el, refresh, later };
}

/** The Test button: sends the sample event through the saved webhook and shows the answer. */
export function testPanel(id, sample) {
  const result = h('div', { class: 'test-result', role: 'status' });
  const btn = h('button', { type: 'button' }, 'Test');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    replace(result, h('p', { class: 'muted' }, 'Sending…'));
    try {
      const a = await api('POST', `/webhooks/${encodeURIComponent(id)}/test`, sample.read());
      const r = a.response;
      replace(result,
        h('p', {}, r ? h('span', { class: `badge ${r.status < 300 ? 'on' : 'off'}` }, `HTTP ${r.status}`) : h('span', { class: 'badge off' }, a.error_kind || 'no response'),
          ` in ${a.duration_ms} ms`),
        a.error ? h('p', { class: 'bad' }, a.error) : null,
        r ? h('div', {}, h('h3', {}, 'Response body'), pre(r.body ? pretty(r.body) : '(empty)', 'Response body')) : null);
    } catch (e) {
      replace(result, h('p', { class: 'bad' }, e?.body?.error?.message || e.message));
    } finally {
      btn.disabled = false;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'test-h' }, h('h2', { id: 'test-h' }, 'Test'),
    h('p', { class: 'hint' }, 'Sends the sample event through the saved webhook now and shows the receiver\'s answer.'),
    btn, result);
}
