// The workflow editor of an inbound hook: a list of nodes, each with its type and the fields of
// that type; a `condition` holds two such lists, `then` and `else`, edited the same way. Nodes can
// be added, removed and moved. `collect()` gives the API's `workflow` array and names every control
// after its JSON path (`workflow[0].then[1].expression`), which is how API errors find it.

import { h, field, input, textarea, select } from '../dom.js';
import { rowsEditor } from './webhook_editors.js';

const TYPES = [['condition', 'Condition (if / else)'], ['set', 'Set a variable'], ['publish', 'Publish an event'],
  ['request', 'HTTP request'], ['response', 'Response to the caller']];
const HINTS = {
  condition: 'Runs “then” when the expression is true, else “else”. A failing expression fails the run.',
  set: 'Adds a string variable for the nodes after it.',
  publish: 'An event into the outbound pipeline: every subscribed webhook receives it.',
  request: 'Calls a URL; {status, headers, body} is saved under “Save as”. Non-2xx is a result, not a failure.',
  response: 'The answer to a sync caller; it ends the run.',
};

/** The whole workflow: `{ el, collect() }`. */
export function workflowEditor(nodes) {
  const list = nodeList(nodes, 'Add node', 1);
  const el = h('fieldset', { class: 'workflow', 'data-field': 'workflow' }, h('legend', {}, 'Workflow'),
    h('p', { class: 'field-error', role: 'alert', hidden: true }),
    h('p', { class: 'hint' }, 'Runs in order over the request’s variables: parsed aliases, request.body, request.query, '
      + 'request.headers, and what earlier nodes saved. Templates are Jinja, e.g. {{ amount }} or {{ body | tojson }}.'),
    list.el);
  return { el, collect: () => list.collect('workflow') };
}

/** A list of nodes with its add button; `collect(path)` names the list `path` (`workflow[0].then`). */
function nodeList(items, addLabel, depth) {
  const box = h('ol', { class: 'nodes' });
  const nodes = [];
  const renumber = () => {
    nodes.forEach((n, i) => {
      n.up.disabled = i === 0;
      n.down.disabled = i === nodes.length - 1;
      box.append(n.el);
    });
    empty.hidden = nodes.length > 0;
  };
  const add = (value) => {
    const n = node(value, depth, {
      remove: () => { nodes.splice(nodes.indexOf(n), 1); n.el.remove(); renumber(); addBtn.focus(); },
      move: (d) => {
        const i = nodes.indexOf(n);
        const j = i + d;
        if (j < 0 || j >= nodes.length) return;
        [nodes[i], nodes[j]] = [nodes[j], nodes[i]];
        renumber();
        (d < 0 ? n.up : n.down).focus();
      },
    });
    nodes.push(n);
    renumber();
    return n;
  };
  const empty = h('p', { class: 'empty' }, 'No nodes.');
  const addBtn = h('button', { type: 'button', class: 'secondary', onclick: () => add().type.focus() }, addLabel);
  for (const v of items ?? []) add(v);
  renumber();
  const el = h('div', { class: 'node-list' }, empty, box, addBtn);
  return {
    el,
    collect: (path) => {
      el.dataset.list = path;
      return nodes.map((n, i) => n.collect(`${path}[${i}]`));
    },
  };
}

/** One node: its type select, move/remove buttons and the fields of its type. */
function node(value, depth, { remove, move }) {
  const v = value ?? { type: 'condition' };
  const type = select(TYPES, { value: v.type, class: 'node-type' });
  const typeField = field('Node type', type, { cls: 'type' });
  const up = h('button', { type: 'button', class: 'secondary', onclick: () => move(-1), 'aria-label': 'Move node up' }, 'Up');
  const down = h('button', { type: 'button', class: 'secondary', onclick: () => move(1), 'aria-label': 'Move node down' }, 'Down');
  const del = h('button', { type: 'button', class: 'secondary', onclick: remove, 'aria-label': 'Remove node' }, 'Remove');
  const groups = {};
  const body = h('div', { class: 'node-body' });
  const hint = h('p', { class: 'hint' });
  const draw = () => {
    groups[type.value] ||= fields(type.value, v.type === type.value ? v : {}, depth);
    body.replaceChildren(groups[type.value].el);
    hint.textContent = HINTS[type.value];
    el.dataset.type = type.value;
  };
  type.addEventListener('change', draw);
  const el = h('li', { class: `node depth-${Math.min(depth, 4)}` },
    h('p', { class: 'field-error', role: 'alert', hidden: true }),
    h('div', { class: 'node-head' }, typeField, h('div', { class: 'actions' }, up, down, del)), hint, body);
  draw();
  return {
    el, type, up, down,
    collect: (path) => {
      el.dataset.field = path;
      el.dataset.path = path;
      typeField.dataset.field = `${path}.type`;
      return { type: type.value, ...groups[type.value].collect(path) };
    },
  };
}

/** A labelled control whose API name is set at collect time: `[wrapper, control]`. */
function named(label, control, key, hint) {
  const wrap = field(label, control, { hint });
  wrap.dataset.key = key;
  return wrap;
}

/** Names every `[data-key]` wrapper of `el` under `path`. */
function rename(el, path) {
  for (const w of el.querySelectorAll(':scope > .field[data-key], :scope > .grid > .field[data-key]')) {
    w.dataset.field = `${path}.${w.dataset.key}`;
  }
}

const text = (value, placeholder, cls = 'code') => input({ value: value ?? '', placeholder, class: cls, autocomplete: 'off', spellcheck: 'false' });
const tpl = (value, placeholder, rows = 3) => textarea({ rows, class: 'code', value: value ?? '', placeholder });
const numOr = (s) => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim());

/** A header map edited as rows; errors such as `….headers.X-A` fall back to the fieldset. */
function headerRows(headers) {
  const items = Object.entries(headers ?? {}).map(([name, value]) => ({ name, value }));
  const rows = rowsEditor({ name: 'headers', legend: 'Headers', addLabel: 'Add header', items,
    cols: [['name', 'Header name', 'X-Kind'], ['value', 'Value', 'text or {{ template }}']] });
  return {
    el: rows.el,
    collect: (path) => {
      const out = {};
      for (const r of rows.collect()) if (r.name) out[r.name] = r.value ?? '';
      rows.el.dataset.field = `${path}.headers`;
      return out;
    },
  };
}

/** The fields of one node type: `{ el, collect(path) }`. */
function fields(kind, v, depth) {
  switch (kind) {
    case 'condition': {
      const expr = text(v.expression, 'amount > 100 and body.currency == "EUR"');
      const then = nodeList(v.then, 'Add to then', depth + 1);
      const other = nodeList(v.else, 'Add to else', depth + 1);
      const exprField = named('Expression', expr, 'expression', 'Jinja expression, e.g. amount > 100.');
      const el = h('div', {}, exprField,
        h('div', { class: 'branch then' }, h('h4', {}, 'Then'), then.el),
        h('div', { class: 'branch else' }, h('h4', {}, 'Else'), other.el));
      return {
        el,
        collect: (path) => {
          exprField.dataset.field = `${path}.expression`;
          return { expression: expr.value.trim(), then: then.collect(`${path}.then`), else: other.collect(`${path}.else`) };
        },
      };
    }
    case 'set': {
      const name = text(v.name, 'total');
      const value = tpl(v.value, '{{ amount * 100 }}', 2);
      const el = h('div', { class: 'grid' }, named('Variable name', name, 'name'), named('Value template', value, 'value'));
      return { el, collect: (path) => { rename(el, path); return { name: name.value.trim(), value: value.value }; } };
    }
    case 'publish': {
      const eventType = text(v.event_type, 'payment.received');
      const model = text(v.model, 'Payment');
      const data = tpl(v.data, '{"order": {{ order_id | tojson }}, "body": {{ body | tojson }}}', 4);
      const saveAs = text(v.save_as, 'event');
      const el = h('div', {},
        h('div', { class: 'grid' }, named('Event type', eventType, 'event_type'), named('Model', model, 'model', 'Optional.'),
          named('Save as', saveAs, 'save_as', 'Optional: saves {id, type} of the event.')),
        named('Data template', data, 'data', 'Must render JSON.'));
      return {
        el,
        collect: (path) => {
          rename(el, path);
          const out = { event_type: eventType.value.trim(), data: data.value };
          if (model.value.trim()) out.model = model.value.trim();
          if (saveAs.value.trim()) out.save_as = saveAs.value.trim();
          return out;
        },
      };
    }
    case 'request': {
      const method = select(['POST', 'PUT', 'PATCH', 'GET', 'DELETE'].map((m) => [m]), { value: v.method ?? 'POST' });
      const url = text(v.url, 'https://api.example.com/orders/{{ order_id }}');
      const saveAs = text(v.save_as, 'crm');
      const timeout = input({ type: 'number', min: '1', inputmode: 'numeric', value: v.timeout_ms ?? '', placeholder: '10000' });
      const headers = headerRows(v.headers);
      const body = tpl(v.body, '{"id": {{ order_id | tojson }}}', 3);
      const el = h('div', {},
        h('div', { class: 'grid' }, named('Method', method, 'method'), named('Save as', saveAs, 'save_as', 'The answer is saved under this name.'),
          named('Timeout (ms)', timeout, 'timeout_ms', 'Blank: 10000.')),
        named('URL template', url, 'url'), headers.el, named('Body template', body, 'body', 'Optional.'));
      return {
        el,
        collect: (path) => {
          rename(el, path);
          const out = { method: method.value, url: url.value.trim(), headers: headers.collect(path), save_as: saveAs.value.trim() };
          if (body.value.trim()) out.body = body.value;
          if (timeout.value.trim()) out.timeout_ms = numOr(timeout.value);
          return out;
        },
      };
    }
    default: {
      const status = input({ type: 'text', inputmode: 'numeric', value: v.status ?? 200, placeholder: '200', class: 'status' });
      const headers = headerRows(v.headers);
      const body = tpl(v.body, '{"accepted": true}', 3);
      const el = h('div', {}, h('div', { class: 'grid' }, named('Status', status, 'status')), headers.el,
        named('Body template', body, 'body'));
      return {
        el,
        collect: (path) => {
          rename(el, path);
          return { status: numOr(status.value), headers: headers.collect(path), body: body.value };
        },
      };
    }
  }
}
