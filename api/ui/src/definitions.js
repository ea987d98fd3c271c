// Definitions: workflow definitions by name and version (diagram, JSON, editor, start form) and
// task definitions.
import { useEffect, useMemo, useState } from './vendor/hooks.mjs';
import { get, request } from './api.js';
import { Failure, Json, Tabs, headers, html, pretty, useLoad, when } from './lib.js';
import { Diagram } from './diagram.js';
import { Editor, jsonError, parseJson } from './editor.js';
import { go, href, setQuery } from './router.js';
import { duration, number, t } from './i18n.js';

export function Definitions({ query: q }) {
  const defs = useLoad(() => get('/metadata/workflow'), []);
  const filter = (q.get('filter') || '').toLowerCase();
  const byName = useMemo(() => {
    const m = new Map();
    for (const d of defs.data || []) {
      const seen = m.get(d.name);
      if (!seen) m.set(d.name, { latest: d, versions: [d.version] });
      else { seen.versions.push(d.version); if (d.version > seen.latest.version) seen.latest = d; }
    }
    return [...m.values()].sort((a, b) => a.latest.name.localeCompare(b.latest.name));
  }, [defs.data]);
  const shown = byName.filter((x) => !filter || x.latest.name.toLowerCase().includes(filter) || (x.latest.description || '').toLowerCase().includes(filter));
  return html`<section>
    <div class="title-row"><h1>${t('definitions.title')}</h1><a class="button primary" href="#/new-definition">${t('definitions.new')}</a></div>
    <label class="filter">${t('common.filter')} <input type="search" value=${q.get('filter') || ''} onInput=${(e) => setQuery({ filter: e.target.value }, { replace: true })} /></label>
    <${Failure} error=${defs.error} />
    <table class="grid">
      <caption>${t('definitions.shown', { shown: number(shown.length), total: number(byName.length) })}</caption>
      ${headers(t('common.name'), t('definitions.latest'), t('definitions.versions'), t('definitions.tasks'), t('common.description'), t('definitions.updated'))}
      <tbody>${shown.map(({ latest, versions }) => html`<tr key=${latest.name}>
        <td><a href=${href(['definitions', latest.name], { version: latest.version })}>${latest.name}</a></td>
        <td>${latest.version}</td><td>${versions.sort((a, b) => a - b).join(', ')}</td><td>${(latest.tasks || []).length}</td>
        <td>${latest.description || ''}</td><td>${when(latest.updateTime || latest.createTime)}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

function StartForm({ def }) {
  const names = Array.isArray(def.inputParameters) ? def.inputParameters : [];
  const [fields, setFields] = useState({});
  const [raw, setRaw] = useState('{}');
  const [correlationId, setCorrelationId] = useState('');
  const [error, setError] = useState(undefined);
  useEffect(() => { setFields({}); setRaw(pretty(def.inputTemplate && Object.keys(def.inputTemplate).length ? def.inputTemplate : {})); }, [def.name, def.version]);
  const value = (text) => { const p = parseJson(text); return p.error ? text : p.value; };
  const start = async (e) => {
    e.preventDefault();
    setError(undefined);
    const parsed = parseJson(raw);
    if (parsed.error) { setError(new Error(t('start.inputError', { message: parsed.error.message }))); return; }
    const input = { ...parsed.value };
    for (const [k, v] of Object.entries(fields)) if (v !== '') input[k] = value(v);
    try {
      const id = await request('POST', '/workflow', { name: def.name, version: def.version, input, correlationId: correlationId || undefined });
      go(['execution', String(id).trim()]);
    } catch (err) { setError(err); }
  };
  return html`<form class="start" onSubmit=${start}>
    ${names.map((n) => html`<label>${n} <input name=${`input-${n}`} value=${fields[n] || ''} placeholder=${t('start.placeholder')}
      onInput=${(e) => setFields({ ...fields, [n]: e.target.value })} /></label>`)}
    <label>${names.length ? t('start.moreInput') : t('start.input')}
      <textarea name="input" rows="6" value=${raw} onInput=${(e) => setRaw(e.target.value)}></textarea></label>
    <label>${t('executions.correlationId')} <input name="correlationId" value=${correlationId} onInput=${(e) => setCorrelationId(e.target.value)} /></label>
    <${Failure} error=${error} />
    <button class="primary" type="submit">${t('start.submit', { name: def.name, version: def.version })}</button>
  </form>`;
}

const tabs = () => [
  { id: 'diagram', label: t('execution.tab.diagram') },
  { id: 'json', label: t('common.json') },
  { id: 'edit', label: t('definition.tab.edit') },
  { id: 'start', label: t('definition.tab.start') },
];

const BLANK = { name: 'new_workflow', description: '', version: 1, schemaVersion: 2, ownerEmail: 'someone@example.com',
  inputParameters: [], tasks: [{ name: 'task_1', taskReferenceName: 'task_1', type: 'SIMPLE', inputParameters: {} }] };

export function Definition({ name, query: q, creating = false }) {
  const version = q.get('version');
  const def = useLoad(() => (creating ? Promise.resolve(BLANK)
    : get(`/metadata/workflow/${encodeURIComponent(name)}${version ? `?version=${encodeURIComponent(version)}` : ''}`)), [name, version, creating]);
  const all = useLoad(() => (creating ? Promise.resolve([]) : get('/metadata/workflow')), [name, creating]);
  const versions = (all.data || []).filter((d) => d.name === name).map((d) => d.version).sort((a, b) => a - b);
  const tab = creating ? 'edit' : q.get('tab') || 'diagram';
  const d = def.data;
  if (!d) return html`<section><h1>${name || t('definitions.new')}</h1>${def.error ? html`<${Failure} error=${def.error} />` : html`<p>${t('common.loading')}</p>`}</section>`;
  return html`<section class="definition">
    <div class="title-row">
      <h1>${creating ? t('definition.newTitle') : html`${d.name} <span class="muted">v${d.version}</span>`}</h1>
      ${versions.length > 1 ? html`<label>${t('definition.version')} <select value=${d.version} onChange=${(e) => setQuery({ version: e.target.value })}>
        ${versions.map((v) => html`<option value=${v}>${v}</option>`)}</select></label>` : null}
      ${!creating ? html`<a class="button" href=${href('executions', { type: d.name })}>${t('nav.executions')}</a>` : null}
    </div>
    ${d.description ? html`<p>${d.description}</p>` : null}
    ${creating ? null : html`<${Tabs} tabs=${tabs()} current=${tab} onSelect=${(id) => setQuery({ tab: id === 'diagram' ? '' : id })} />`}
    <div class="tab-body" role=${creating ? undefined : 'tabpanel'}>
      ${tab === 'diagram' ? html`<${Diagram} def=${d} />` : null}
      ${tab === 'json' ? html`<${Json} value=${d} label=${t('definition.jsonLabel')} />` : null}
      ${tab === 'edit' ? html`<${Editor} key=${`${d.name}/${d.version}`} initial=${d} creating=${creating}
        onSaved=${() => { def.reload(); all.reload(); }} />` : null}
      ${tab === 'start' ? html`<${StartForm} def=${d} />` : null}
    </div>
  </section>`;
}

const seconds = (n) => duration((Number(n) || 0) * 1000);

const TASK_BLANK = { name: 'new_task', description: '', retryCount: 3, retryLogic: 'FIXED', retryDelaySeconds: 60,
  timeoutSeconds: 0, timeoutPolicy: 'TIME_OUT_WF', responseTimeoutSeconds: 3600, ownerEmail: 'someone@example.com' };

function TaskDefEditor({ initial, creating, onSaved }) {
  const [text, setText] = useState(pretty(initial));
  const [error, setError] = useState(undefined);
  const parsed = parseJson(text);
  const save = async () => {
    setError(undefined);
    try {
      if (creating) await request('POST', '/metadata/taskdefs', [parsed.value]); else await request('PUT', '/metadata/taskdefs', parsed.value);
      onSaved(parsed.value.name);
    } catch (e) { setError(e); }
  };
  return html`<div class="taskdef-editor">
    <label for="taskdef-json">${creating ? t('taskdefs.newJson') : t('taskdefs.json', { name: initial.name })}</label>
    <textarea id="taskdef-json" rows="16" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)} aria-invalid=${!!parsed.error}></textarea>
    ${parsed.error ? html`<p class="error" role="alert">${jsonError(parsed.error)}</p>` : null}
    <${Failure} error=${error} />
    <div class="buttons"><button class="primary" disabled=${!!parsed.error} onClick=${save}>${creating ? t('taskdefs.create') : t('taskdefs.save')}</button>
      <button onClick=${() => setQuery({ edit: '' })}>${t('taskdefs.close')}</button></div>
  </div>`;
}

export function TaskDefinitions({ query: q }) {
  const defs = useLoad(() => get('/metadata/taskdefs'), []);
  const editing = q.get('edit');
  const filter = (q.get('filter') || '').toLowerCase();
  const rows = (defs.data || []).filter((d) => !filter || d.name.toLowerCase().includes(filter)).sort((a, b) => a.name.localeCompare(b.name));
  const current = editing && editing !== '+' ? (defs.data || []).find((d) => d.name === editing) : undefined;
  return html`<section>
    <div class="title-row"><h1>${t('nav.taskdefs')}</h1><button class="primary" onClick=${() => setQuery({ edit: '+' })}>${t('taskdefs.new')}</button></div>
    ${editing === '+' ? html`<${TaskDefEditor} initial=${TASK_BLANK} creating=${true} onSaved=${(n) => { defs.reload(); setQuery({ edit: n }); }} />` : null}
    ${current ? html`<${TaskDefEditor} key=${current.name} initial=${current} onSaved=${() => defs.reload()} />` : null}
    <label class="filter">${t('common.filter')} <input type="search" value=${q.get('filter') || ''} onInput=${(e) => setQuery({ filter: e.target.value }, { replace: true })} /></label>
    <${Failure} error=${defs.error} />
    <table class="grid">
      ${headers(t('common.name'), t('taskdefs.retries'), t('taskdefs.timeout'), t('taskdefs.responseTimeout'), t('taskdefs.rateLimit'), t('taskdefs.concurrency'), t('common.description'))}
      <tbody>${rows.map((d) => html`<tr key=${d.name}>
        <td><a href=${href('taskdefs', { edit: d.name })}>${d.name}</a></td>
        <td>${d.retryCount} × ${d.retryLogic} ${seconds(d.retryDelaySeconds)}</td><td>${d.timeoutSeconds ? `${seconds(d.timeoutSeconds)} (${d.timeoutPolicy})` : '—'}</td>
        <td>${seconds(d.responseTimeoutSeconds)}</td><td>${d.rateLimitPerFrequency ? t('taskdefs.rate', { n: d.rateLimitPerFrequency, per: seconds(d.rateLimitFrequencyInSeconds) }) : '—'}</td>
        <td>${d.concurrentExecLimit || '—'}</td><td>${d.description || ''}</td></tr>`)}</tbody>
    </table>
  </section>`;
}
