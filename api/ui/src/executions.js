// Executions: search (status, type, correlation id, time range, free text), sort, pages, and
// counts by status, all in the URL.
import { useState } from './vendor/hooks.mjs';
import { get, qs } from './api.js';
import { Failure, Status, WORKFLOW_STATUSES, duration, html, useLoad, when } from './lib.js';
import { number, relative, t } from './i18n.js';
import { href, setQuery } from './router.js';

const SIZES = [25, 50, 100, 200];
const quote = (v) => `'${String(v).replace(/'/g, '')}'`;

/** The search query (Conductor's syntax) for the filters in the URL; `status` may be left out. */
export function searchQuery(q, { withStatus = true } = {}) {
  const parts = [];
  const statuses = (q.get('status') || '').split(',').filter(Boolean);
  if (withStatus && statuses.length) parts.push(`status IN (${statuses.join(',')})`);
  if (q.get('type')) parts.push(`workflowType = ${quote(q.get('type'))}`);
  if (q.get('correlationId')) parts.push(`correlationId = ${quote(q.get('correlationId'))}`);
  const from = Date.parse(q.get('from') || '');
  const to = Date.parse(q.get('to') || '');
  if (!Number.isNaN(from)) parts.push(`startTime >= ${from}`);
  if (!Number.isNaN(to)) parts.push(`startTime <= ${to}`);
  return parts.join(' AND ');
}

// Drawn afresh (a new `key`) whenever the URL's query changes, so its draft starts from the
// filters in the URL in the same render: no later reset can undo what is typed after a search
// or a Clear.
function Filters({ q }) {
  const [draft, setDraft] = useState(() => ({
    type: q.get('type') || '', correlationId: q.get('correlationId') || '', text: q.get('text') || '',
    from: q.get('from') || '', to: q.get('to') || '',
  }));
  const field = (name, label, type = 'text') => html`<label>${label}
    <input type=${type} name=${name} value=${draft[name] || ''} onInput=${(e) => setDraft({ ...draft, [name]: e.target.value })} /></label>`;
  const submit = (e) => { e.preventDefault(); setQuery({ ...draft, page: '' }); };
  return html`<form class="filters" role="search" onSubmit=${submit}>
    ${field('text', t('executions.freeText'), 'search')}
    ${field('type', t('executions.workflowType'))}
    ${field('correlationId', t('executions.correlationId'))}
    ${field('from', t('executions.from'), 'datetime-local')}
    ${field('to', t('executions.until'), 'datetime-local')}
    <button class="primary" type="submit">${t('executions.search')}</button>
    <button type="button" onClick=${() => setQuery({ type: '', correlationId: '', text: '', from: '', to: '', status: '', page: '' })}>${t('executions.clear')}</button>
  </form>`;
}

function StatusCounts({ q }) {
  const selected = (q.get('status') || '').split(',').filter(Boolean);
  const base = searchQuery(q, { withStatus: false });
  const text = q.get('text') || '';
  const counts = useLoad(() => Promise.all(WORKFLOW_STATUSES.map((s) => {
    const query = [base, `status = ${s}`].filter(Boolean).join(' AND ');
    return get(`/workflow/search${qs({ start: 0, size: 0, query, freeText: text || '*' })}`).then((r) => r.totalHits, () => undefined);
  })), [base, text], 5000);
  const toggle = (s) => {
    const next = selected.includes(s) ? selected.filter((x) => x !== s) : [...selected, s];
    setQuery({ status: next.join(','), page: '' });
  };
  return html`<div class="counts" role="group" aria-label=${t('executions.byStatus')}>
    ${WORKFLOW_STATUSES.map((s, i) => html`<button type="button" class="count" aria-pressed=${selected.includes(s)}
      onClick=${() => toggle(s)} data-count-status=${s}><${Status} status=${s} /> <strong>${counts.data?.[i] === undefined ? '…' : number(counts.data[i])}</strong></button>`)}
  </div>`;
}

function SortHeader({ field, label, sort }) {
  const [f, dir] = sort.split(':');
  const active = f === field;
  const next = active && dir === 'DESC' ? 'ASC' : 'DESC';
  return html`<th scope="col" aria-sort=${active ? (dir === 'ASC' ? 'ascending' : 'descending') : 'none'}>
    <button class="link" onClick=${() => setQuery({ sort: `${field}:${next}`, page: '' })}>${label}${active ? (dir === 'ASC' ? ' ▲' : ' ▼') : ''}</button>
  </th>`;
}

export function Executions({ query: q }) {
  const size = Number(q.get('size')) || 25;
  const page = Math.max(1, Number(q.get('page')) || 1);
  const sort = q.get('sort') || 'startTime:DESC';
  const params = { start: (page - 1) * size, size, sort, query: searchQuery(q), freeText: q.get('text') || '*' };
  const key = JSON.stringify(params);
  const result = useLoad(() => get(`/workflow/search${qs(params)}`), [key], 5000);
  const total = result.data?.totalHits ?? 0;
  const pages = Math.max(1, Math.ceil(total / size));
  const rows = result.data?.results || [];
  return html`<section>
    <div class="title-row"><h1>${t('executions.title')}</h1><a class="button" href="#/definitions">${t('executions.start')}</a></div>
    <${Filters} key=${q.toString()} q=${q} />
    <${StatusCounts} q=${q} />
    <${Failure} error=${result.error} />
    <table class="grid executions" aria-busy=${result.loading}>
      <caption>${t(total === 1 ? 'executions.matching.one' : 'executions.matching.other', { count: number(total) })}${result.loading ? ` ${t('executions.loading')}` : ''}</caption>
      <thead><tr>
        <th scope="col">${t('executions.workflowId')}</th>
        <${SortHeader} field="workflowType" label=${t('executions.type')} sort=${sort} />
        <${SortHeader} field="status" label=${t('executions.status')} sort=${sort} />
        <th scope="col">${t('executions.correlationId')}</th>
        <${SortHeader} field="startTime" label=${t('executions.started')} sort=${sort} />
        <${SortHeader} field="endTime" label=${t('executions.ended')} sort=${sort} />
        <${SortHeader} field="executionTime" label=${t('executions.duration')} sort=${sort} />
      </tr></thead>
      <tbody>
        ${rows.map((w) => html`<tr key=${w.workflowId} data-workflow-id=${w.workflowId}>
          <td><a class="mono" href=${href(['execution', w.workflowId])}>${w.workflowId}</a></td>
          <td>${w.workflowType} <span class="muted">v${w.version}</span></td>
          <td><${Status} status=${w.status} /></td>
          <td>${w.correlationId || ''}</td>
          <td title=${relative(w.startTime) || undefined}>${when(w.startTime)}</td>
          <td>${when(w.endTime)}</td>
          <td>${w.executionTime ? duration(w.executionTime) : w.status === 'RUNNING' ? duration(Date.now() - Date.parse(w.startTime)) : '—'}</td>
        </tr>`)}
        ${!rows.length && !result.loading ? html`<tr><td colspan="7" class="empty">${t('executions.none')}</td></tr>` : null}
      </tbody>
    </table>
    <nav class="pager" aria-label=${t('executions.pages')}>
      <button disabled=${page <= 1} onClick=${() => setQuery({ page: page - 1 })}>${t('executions.previous')}</button>
      <span>${t('executions.page', { page: number(page), pages: number(pages) })}</span>
      <button disabled=${page >= pages} onClick=${() => setQuery({ page: page + 1 })}>${t('executions.next')}</button>
      <label>${t('executions.perPage')} <select value=${size} onChange=${(e) => setQuery({ size: e.target.value, page: '' })}>
        ${SIZES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
    </nav>
  </section>`;
}
