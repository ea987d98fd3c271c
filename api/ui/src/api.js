// Calls to this node's Conductor API. With authentication on, a token from POST /api/token
// (kept for this browser tab only) goes in X-Authorization; a 401 sends the user to sign in.

const TOKEN = 'overture.token';
let onSignIn = () => {};

export const token = () => sessionStorage.getItem(TOKEN);
export function whenSignInNeeded(callback) { onSignIn = callback; }
export function signOut() { sessionStorage.removeItem(TOKEN); }

/** An error from the API, with Conductor's message and validation errors. */
export class ApiError extends Error {
  constructor(status, body) {
    const message = body?.message || (typeof body === 'string' && body) || `HTTP ${status}`;
    super(`${message} (${status})`);
    this.status = status;
    this.details = body?.validationErrors || [];
  }
}

/** `request('GET', '/workflow/x')` → parsed JSON, text, or null for an empty answer. */
export async function request(method, path, body) {
  const headers = { Accept: 'application/json, text/plain' };
  const t = token();
  if (t) headers['X-Authorization'] = t;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, { method, headers, body: payload });
  const raw = await response.text();
  let parsed = raw;
  if ((response.headers.get('content-type') || '').includes('json') && raw) {
    try { parsed = JSON.parse(raw); } catch { parsed = raw; }
  }
  if (response.status === 401) {
    signOut();
    onSignIn();
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return raw === '' ? null : parsed;
}

export const get = (path) => request('GET', path);

/** Signs in with an API key; the token is kept for this tab. */
export async function signIn(keyId, keySecret) {
  const answer = await request('POST', '/token', { keyId, keySecret });
  sessionStorage.setItem(TOKEN, answer.token);
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
