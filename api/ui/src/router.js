// Hash routes, so every view (filters, tabs and the selected task included) has a URL that can
// be shared and that any node serves: #/executions?status=RUNNING, #/execution/<id>?tab=timeline.
import { useEffect, useState } from './vendor/hooks.mjs';

export function parse(hash = location.hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

/** A link target: href('execution', id) with optional query. */
export function href(parts, query) {
  const path = (Array.isArray(parts) ? parts : [parts]).map((p) => encodeURIComponent(p)).join('/');
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString() : '';
  return `#/${path}${q ? `?${q}` : ''}`;
}

export function go(parts, query) { location.hash = href(parts, query); }

/**
 * Changes some query parameters of the current view: a new history entry, so Back works, or with
 * `replace` (typing in a filter) the current one.
 */
export function setQuery(updates, { replace = false } = {}) {
  const { parts, query } = parse();
  for (const [k, v] of Object.entries(updates)) {
    if (v === undefined || v === null || v === '') query.delete(k); else query.set(k, String(v));
  }
  const next = href(parts, Object.fromEntries(query));
  if (!replace) { location.hash = next; return; }
  history.replaceState(null, '', next);
  dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute() {
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const changed = () => setRoute(parse());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}
