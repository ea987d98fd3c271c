// Shared by every view: the template tag, formatting, statuses, and small hooks.
import { h } from './vendor/preact.mjs';
import { useEffect, useRef, useState } from './vendor/hooks.mjs';
import htm from './vendor/htm.mjs';
import { has, t } from './i18n.js';

export const html = htm.bind(h);

/** Statuses grouped by how they look: done, running, failed, stopped. */
const TONE = {
  COMPLETED: 'ok', COMPLETED_WITH_ERRORS: 'warn', SKIPPED: 'muted',
  RUNNING: 'run', IN_PROGRESS: 'run', SCHEDULED: 'wait', PAUSED: 'wait',
  FAILED: 'bad', FAILED_WITH_TERMINAL_ERROR: 'bad', TIMED_OUT: 'bad',
  TERMINATED: 'stop', CANCELED: 'stop',
};
export const tone = (status) => TONE[status] || 'muted';
export const WORKFLOW_STATUSES = ['RUNNING', 'COMPLETED', 'FAILED', 'TIMED_OUT', 'TERMINATED', 'PAUSED'];
export const TERMINAL = new Set(['COMPLETED', 'FAILED', 'TIMED_OUT', 'TERMINATED']);

/** A status's word in the language in use; Conductor's own name where the language has no other. */
export const statusWord = (status) => (has(`status.${status}`) ? t(`status.${status}`) : status);

/** A status badge: Conductor's name, with the word for it beside it where that differs (运行中 RUNNING). */
export function Status({ status }) {
  const word = statusWord(status);
  return html`<span class=${`badge tone-${tone(status)}`} data-status=${status}>${!status ? '—' : word === status ? status : `${word} ${status}`}</span>`;
}

/** A node's Raft state as the API names it (Leader, Follower…), in the language in use. */
export const roleWord = (state) => (has(`raft.${state}`) ? t(`raft.${state}`) : state);

export { dateTime as when, duration } from './i18n.js';

/** Column headers, each scoped to its column. */
export const headers = (...labels) => html`<thead><tr>${labels.map((l) => html`<th scope="col">${l}</th>`)}</tr></thead>`;

export const pretty = (v) => JSON.stringify(v ?? null, null, 2);

export function Json({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label || t('common.json')}>${pretty(value)}</pre>`;
}

/**
 * Loads with `load()` whenever `deps` change, and again every `every` ms while `every` is set
 * and the tab is visible. Returns {data, error, loading, reload}.
 */
export function useLoad(load, deps, every) {
  const [state, setState] = useState({ data: undefined, error: undefined, loading: true });
  const generation = useRef(0);
  const reload = () => {
    const mine = ++generation.current;
    return load().then(
      (data) => { if (mine === generation.current) setState({ data, error: undefined, loading: false }); },
      (error) => { if (mine === generation.current) setState((s) => ({ data: s.data, error, loading: false })); },
    );
  };
  useEffect(() => {
    setState((s) => ({ ...s, loading: true }));
    reload();
    return () => { generation.current++; };
  }, deps);
  useEffect(() => {
    if (!every) return undefined;
    const timer = setInterval(() => { if (document.visibilityState === 'visible') reload(); }, every);
    return () => clearInterval(timer);
  }, [every, ...deps]);
  return { ...state, reload };
}

export function Failure({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message || String(error)}
    ${error.details?.length ? html`<ul>${error.details.map((d) => html`<li><code>${d.path}</code>: ${d.message}</li>`)}</ul>` : null}
  </div>`;
}

/**
 * A confirmation dialog (native <dialog>, so focus is trapped and Escape cancels). `ask` is
 * {title, body, confirm, reason?, run}; `run(reason)` performs the action.
 */
export function Confirm({ ask, onClose }) {
  const ref = useRef(null);
  const [reason, setReason] = useState('');
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (ask && ref.current && !ref.current.open) ref.current.showModal();
    setReason(''); setError(undefined); setBusy(false);
  }, [ask]);
  if (!ask) return null;
  const close = () => { ref.current?.close(); onClose(); };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try { await ask.run(reason); close(); } catch (err) { setError(err); setBusy(false); }
  };
  return html`<dialog ref=${ref} class="confirm" onClose=${onClose} aria-labelledby="confirm-title">
    <form method="dialog" onSubmit=${submit}>
      <h2 id="confirm-title">${ask.title}</h2>
      <p>${ask.body}</p>
      ${ask.reason ? html`<label>${t('confirm.reason')} <input name="reason" value=${reason} onInput=${(e) => setReason(e.target.value)} /></label>` : null}
      <${Failure} error=${error} />
      <div class="buttons">
        <button type="button" onClick=${close}>${t('confirm.cancel')}</button>
        <button type="submit" class=${ask.danger ? 'danger' : 'primary'} disabled=${busy}>${ask.confirm}</button>
      </div>
    </form>
  </dialog>`;
}

/** Tabs whose choice lives in the URL (`tab=`), so every view can be shared. */
export function Tabs({ tabs, current, onSelect }) {
  const keys = (e, i) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    onSelect(next.id);
    requestAnimationFrame(() => document.getElementById(`tab-${next.id}`)?.focus());
  };
  return html`<div class="tabs" role="tablist">
    ${tabs.map((tab, i) => html`<button role="tab" id=${`tab-${tab.id}`} aria-selected=${tab.id === current}
      tabindex=${tab.id === current ? 0 : -1} onKeyDown=${(e) => keys(e, i)} onClick=${() => onSelect(tab.id)}>${tab.label}</button>`)}
  </div>`;
}
