// The one client of hookd's public REST API. The admin token lives in sessionStorage: it is gone
// when the tab closes. A 401 signs out.

const KEY = 'hookd.token';

export const token = () => sessionStorage.getItem(KEY);
export const signIn = (t) => sessionStorage.setItem(KEY, t);
export function signOut(reason) {
  sessionStorage.removeItem(KEY);
  if (reason) sessionStorage.setItem('hookd.flash', reason);
  location.hash = '#/signin';
}
export function takeFlash() {
  const f = sessionStorage.getItem('hookd.flash');
  sessionStorage.removeItem('hookd.flash');
  return f;
}

/** An error answer: `status` and the `{"error": {code, message, field}}` body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `hookd answered ${status}`);
    this.status = status;
    this.body = body || { error: { code: 'http_' + status, message: this.message } };
  }
}

/** `api('GET', '/webhooks')`: the JSON answer, or throws ApiError. */
export async function api(method, path, body, opts = {}) {
  const t = opts.token ?? token();
  const headers = { Authorization: `Bearer ${t}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch('/api/v1' + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: `hookd did not answer (${e.message})` } });
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!resp.ok) {
    if (resp.status === 401 && opts.token === undefined) signOut('Your session ended: sign in again.');
    throw new ApiError(resp.status, json);
  }
  return json;
}

/** A query string from the non-empty entries of `params`. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}
