// Definitions: workflow definitions by name and version (diagram, JSON, editor, start form) and
// task definitions.
import { useEffect, useMemo, useState } from './vendor/hooks.mjs';
import { get, request } from './api.js';
import { Failure, Json, Tabs, html, pretty, useLoad, when } from './lib.js';
import { Diagram } from './diagram.js';
import { Editor, parseJson } from './editor.js';
import { go, href, setQuery } from './router.js';

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
    <div class="title-row"><h1>Workflow definitions</h1><a class="button primary" href="#/new-definition">New definition</a></div>
    <label class="filter">Filter <input type="search" value=${q.get('filter') || ''} onInput=${(e) => setQuery({ filter: e.target.value }, { replace: true })} /></label>
    <${Failure} error=${defs.error} />
    <table class="grid">
      <caption>${shown.length} of ${byName.length} definitions</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Latest version</th><th scope="col">Versions</th><th scope="col">Tasks</th><th scope="col">Description</th><th scope="col">Updated</th></tr></thead>
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
    if (parsed.error) { setError(new Error(`Input JSON: ${parsed.error.message}`)); return; }
    const input = { ...parsed.value };
    for (const [k, v] of Object.entries(fields)) if (v !== '') input[k] = value(v);
    try {
      const id = await request('POST', '/workflow', { name: def.name, version: def.version, input, correlationId: correlationId || undefined });
      go(['execution', String(id).trim()]);
    } catch (err) { setError(err); }
  };
  return html`<form class="start" onSubmit=${start}>
    ${names.map((n) => html`<label>${n} <input name=${`input-${n}`} value=${fields[n] || ''} placeholder="text, or JSON"
      onInput=${(e) => setFields({ ...fields, [n]: e.target.value })} /></label>`)}
    <label>${names.length ? 'More input (JSON; the fields above win)' : 'Input (JSON)'}
      <textarea name="input" rows="6" value=${raw} onInput=${(e) => setRaw(e.target.value)}></textarea></label>
    <label>Correlation id <input name="correlationId" value=${correlationId} onInput=${(e) => setCorrelationId(e.target.value)} /></label>
    <${Failure} error=${error} />
    <button class="primary" type="submit">Start ${def.name} v${def.version}</button>
  </form>`;
}

const TABS = [
  { id: 'diagram', label: 'Diagram' },
  { id: 'json', label: 'JSON' },
  { id: 'edit', label: 'Edit' },
  { id: 'start', label: 'Start' },
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
  if (!d) return html`<section><h1>${name || 'New definition'}</h1>${def.error ? html`<${Failure} error=${def.error} />` : html`<p>Loading…</p>`}</section>`;
  return html`<section class="definition">
    <div class="title-row">
      <h1>${creating ? 'New workflow definition' : html`${d.name} <span class="muted">v${d.version}</span>`}</h1>
      ${versions.length > 1 ? html`<label>Version <select value=${d.version} onChange=${(e) => setQuery({ version: e.target.value })}>
        ${versions.map((v) => html`<option value=${v}>${v}</option>`)}</select></label>` : null}
      ${!creating ? html`<a class="button" href=${href('executions', { type: d.name })}>Executions</a>` : null}
    </div>
    ${d.description ? html`<p>${d.description}</p>` : null}
    ${creating ? null : html`<${Tabs} tabs=${TABS} current=${tab} onSelect=${(t) => setQuery({ tab: t === 'diagram' ? '' : t })} />`}
    <div class="tab-body" role=${creating ? undefined : 'tabpanel'}>
      ${tab === 'diagram' ? html`<${Diagram} def=${d} />` : null}
      ${tab === 'json' ? html`<${Json} value=${d} label="Definition JSON" />` : null}
      ${tab === 'edit' ? html`<${Editor} key=${`${d.name}/${d.version}`} initial=${d} creating=${creating}
        onSaved=${() => { def.reload(); all.reload(); }} />` : null}
      ${tab === 'start' ? html`<${StartForm} def=${d} />` : null}
    </div>
  </section>`;
}

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
    <label for="taskdef-json">${creating ? 'New task definition' : `Task definition ${initial.name}`} (JSON)</label>
    <textarea id="taskdef-json" rows="16" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)} aria-invalid=${!!parsed.error}></textarea>
    ${parsed.error ? html`<p class="error" role="alert">${parsed.error.line ? `Line ${parsed.error.line}, column ${parsed.error.column}: ` : ''}${parsed.error.message}</p>` : null}
    <${Failure} error=${error} />
    <div class="buttons"><button class="primary" disabled=${!!parsed.error} onClick=${save}>${creating ? 'Create' : 'Save'}</button>
      <button onClick=${() => setQuery({ edit: '' })}>Close</button></div>
  </div>`;
}

export function TaskDefinitions({ query: q }) {
  const defs = useLoad(() => get('/metadata/taskdefs'), []);
  const editing = q.get('edit');
  const filter = (q.get('filter') || '').toLowerCase();
  const rows = (defs.data || []).filter((d) => !filter || d.name.toLowerCase().includes(filter)).sort((a, b) => a.name.localeCompare(b.name));
  const current = editing && editing !== '+' ? (defs.data || []).find((d) => d.name === editing) : undefined;
  return html`<section>
    <div class="title-row"><h1>Task definitions</h1><button class="primary" onClick=${() => setQuery({ edit: '+' })}>New task definition</button></div>
    ${editing === '+' ? html`<${TaskDefEditor} initial=${TASK_BLANK} creating=${true} onSaved=${(n) => { defs.reload(); setQuery({ edit: n }); }} />` : null}
    ${current ? html`<${TaskDefEditor} key=${current.name} initial=${current} onSaved=${() => defs.reload()} />` : null}
    <label class="filter">Filter <input type="search" value=${q.get('filter') || ''} onInput=${(e) => setQuery({ filter: e.target.value }, { replace: true })} /></label>
    <${Failure} error=${defs.error} />
    <table class="grid">
      <thead><tr><th scope="col">Name</th><th scope="col">Retries</th><th scope="col">Timeout</th><th scope="col">Response timeout</th><th scope="col">Rate limit</th><th scope="col">Concurrency</th><th scope="col">Description</th></tr></thead>
      <tbody>${rows.map((d) => html`<tr key=${d.name}>
        <td><a href=${href('taskdefs', { edit: d.name })}>${d.name}</a></td>
        <td>${d.retryCount} × ${d.retryLogic} ${d.retryDelaySeconds} s</td><td>${d.timeoutSeconds ? `${d.timeoutSeconds} s (${d.timeoutPolicy})` : '—'}</td>
        <td>${d.responseTimeoutSeconds} s</td><td>${d.rateLimitPerFrequency ? `${d.rateLimitPerFrequency} / ${d.rateLimitFrequencyInSeconds} s` : '—'}</td>
        <td>${d.concurrentExecLimit || '—'}</td><td>${d.description || ''}</td></tr>`)}</tbody>
    </table>
  </section>`;
}
