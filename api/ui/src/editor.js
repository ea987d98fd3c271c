// Editing a workflow definition: as JSON, or on the diagram (add, remove, reorder and move tasks
// between branches; add fork branches, switch cases and loop bodies), the two kept in sync both
// ways and checked before saving.
import { useEffect, useMemo, useRef, useState } from './vendor/hooks.mjs';
import { request } from './api.js';
import { Failure, html, pretty } from './lib.js';
import { Diagram, pathKey } from './diagram.js';
import { go } from './router.js';
import { t } from './i18n.js';

const INSERTABLE = ['SIMPLE', 'HTTP', 'INLINE', 'JSON_JQ_TRANSFORM', 'SET_VARIABLE', 'WAIT', 'SUB_WORKFLOW', 'FORK_JOIN', 'SWITCH', 'DO_WHILE', 'TERMINATE'];

/** `JSON.parse` with the line and column of an error. */
export function parseJson(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const m = /position (\d+)/.exec(e.message);
    let line; let column;
    const lc = /line (\d+) column (\d+)/.exec(e.message);
    if (lc) { line = Number(lc[1]); column = Number(lc[2]); } else if (m) {
      const before = text.slice(0, Number(m[1])).split('\n');
      line = before.length; column = before[before.length - 1].length + 1;
    }
    return { error: { message: e.message.replace(/\s*\(line \d+ column \d+\)/, ''), line, column, position: m ? Number(m[1]) : undefined } };
  }
}

function* walk(tasks, base) {
  for (let i = 0; i < (tasks || []).length; i++) {
    const t = tasks[i];
    const path = [...base, i];
    yield { task: t, path, siblings: tasks, index: i };
    if (!t || typeof t !== 'object') continue;
    for (let j = 0; j < (t.forkTasks || []).length; j++) yield* walk(t.forkTasks[j], [...path, 'forkTasks', j]);
    for (const [k, b] of Object.entries(t.decisionCases || {})) yield* walk(b, [...path, 'decisionCases', k]);
    yield* walk(t.defaultCase, [...path, 'defaultCase']);
    yield* walk(t.loopOver, [...path, 'loopOver']);
  }
}

/** A JSON syntax error, with its line and column where known. */
export const jsonError = (e) => `${e.line ? t('json.at', { line: e.line, column: e.column }) : ''}${e.message}`;

const where = (path) => path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');

/** What the server would refuse, found before saving: [{path, message, key}]. */
export function validate(def) {
  const errors = [];
  if (!def || typeof def !== 'object' || Array.isArray(def)) return [{ path: '', message: t('rule.object') }];
  if (!def.name || typeof def.name !== 'string' || !def.name.trim()) errors.push({ path: 'name', message: t('rule.name') });
  if (!Array.isArray(def.tasks) || !def.tasks.length) errors.push({ path: 'tasks', message: t('rule.tasks') });
  const refs = new Map();
  for (const { task, path, siblings, index } of walk(Array.isArray(def.tasks) ? def.tasks : [], ['tasks'])) {
    const at = where(path);
    const key = pathKey(path);
    if (!task || typeof task !== 'object') { errors.push({ path: at, key, message: t('rule.task') }); continue; }
    if (!task.name) errors.push({ path: `${at}.name`, key, message: t('rule.name') });
    if (!task.taskReferenceName) errors.push({ path: `${at}.taskReferenceName`, key, message: t('rule.ref') });
    else if (refs.has(task.taskReferenceName)) errors.push({ path: `${at}.taskReferenceName`, key, message: t('rule.twice', { ref: task.taskReferenceName }) });
    else refs.set(task.taskReferenceName, key);
    const type = task.type || 'SIMPLE';
    if (type === 'FORK_JOIN' && siblings[index + 1]?.type !== 'JOIN') errors.push({ path: at, key, message: t('rule.join') });
    if (type === 'SWITCH' && !task.expression) errors.push({ path: `${at}.expression`, key, message: t('rule.expression') });
    if (type === 'DO_WHILE' && !task.loopCondition) errors.push({ path: `${at}.loopCondition`, key, message: t('rule.loopCondition') });
    if (type === 'SUB_WORKFLOW' && !task.subWorkflowParam?.name) errors.push({ path: `${at}.subWorkflowParam.name`, key, message: t('rule.subWorkflow') });
  }
  return errors;
}

// Tree edits on a copy of the definition. A path is ['tasks', 2, 'forkTasks', 0, 1]: the last
// element indexes the list the rest of the path names.
const clone = (v) => structuredClone(v);
function listAt(def, path) {
  let here = def;
  for (const step of path.slice(0, -1)) {
    if (here[step] === undefined) here[step] = [];
    here = here[step];
  }
  return here;
}
function uniqueRef(def, stem) {
  const taken = new Set([...walk(def.tasks || [], ['tasks'])].map((x) => x.task?.taskReferenceName));
  for (let n = 1; ; n++) if (!taken.has(`${stem}_${n}`)) return `${stem}_${n}`;
}

/** New tasks of a type (a fork comes with its join). */
export function template(def, type) {
  const simple = () => { const r = uniqueRef(def, 'task'); taken(r); return { name: r, taskReferenceName: r, type: 'SIMPLE', inputParameters: {} }; };
  // Each new reference joins the definition's, so the next one made here differs from it.
  function taken(r) { def = { ...def, tasks: [...(def.tasks || []), { taskReferenceName: r }] }; }
  const ref = uniqueRef(def, type.toLowerCase());
  taken(ref);
  const base = { name: ref, taskReferenceName: ref, type, inputParameters: {} };
  switch (type) {
    case 'HTTP': return [{ ...base, inputParameters: { http_request: { uri: 'http://localhost:8080/', method: 'GET' } } }];
    case 'INLINE': return [{ ...base, inputParameters: { evaluatorType: 'javascript', expression: '(function () { return $.value; })()', value: 1 } }];
    case 'JSON_JQ_TRANSFORM': return [{ ...base, inputParameters: { queryExpression: '.' } }];
    case 'WAIT': return [{ ...base, inputParameters: { duration: '10 seconds' } }];
    case 'SUB_WORKFLOW': return [{ ...base, subWorkflowParam: { name: '', version: 1 } }];
    case 'TERMINATE': return [{ ...base, inputParameters: { terminationStatus: 'COMPLETED' } }];
    case 'FORK_JOIN': {
      const branches = [[simple()], [simple()]];
      const join = uniqueRef(def, 'join');
      return [{ ...base, forkTasks: branches }, { name: join, taskReferenceName: join, type: 'JOIN', joinOn: branches.map((b) => b[0].taskReferenceName) }];
    }
    case 'SWITCH': return [{ ...base, evaluatorType: 'value-param', expression: 'switchCaseValue', inputParameters: { switchCaseValue: '${workflow.input.case}' }, decisionCases: { a: [simple()] }, defaultCase: [] }];
    case 'DO_WHILE': return [{ ...base, loopCondition: `if ($.${ref}['iteration'] < 3) { true; } else { false; }`, loopOver: [simple()] }];
    default: return [base];
  }
}

/** Each JOIN right after a FORK_JOIN waits for the last task of every branch. */
export function syncJoins(def) {
  for (const { task, siblings, index } of walk(def.tasks || [], ['tasks'])) {
    const next = siblings[index + 1];
    if (task?.type === 'FORK_JOIN' && next?.type === 'JOIN') {
      next.joinOn = (task.forkTasks || []).filter((b) => b.length).map((b) => b[b.length - 1].taskReferenceName);
    }
  }
  return def;
}

export const edits = {
  insert(def, path, tasks, after = true) {
    const d = clone(def);
    const list = listAt(d, path);
    const at = path[path.length - 1] + (after ? 1 : 0);
    list.splice(Math.min(at, list.length), 0, ...tasks);
    return syncJoins(d);
  },
  remove(def, path) {
    const d = clone(def);
    const list = listAt(d, path);
    const [gone] = list.splice(path[path.length - 1], 1);
    // A fork's join goes with it.
    if (gone?.type === 'FORK_JOIN' && list[path[path.length - 1]]?.type === 'JOIN') list.splice(path[path.length - 1], 1);
    return syncJoins(d);
  },
  move(def, path, delta) {
    const d = clone(def);
    const list = listAt(d, path);
    const i = path[path.length - 1];
    const j = i + delta;
    if (j < 0 || j >= list.length) return def;
    [list[i], list[j]] = [list[j], list[i]];
    return syncJoins(d);
  },
  /** Moves the task at `from` to just after `to` (or into the empty list `to` names). */
  relocate(def, from, to, intoEmpty) {
    const fromKey = pathKey(from);
    if (pathKey(to).startsWith(`${fromKey}/`) || pathKey(to) === fromKey) return def;
    const d = clone(def);
    const source = listAt(d, from);
    const [task] = source.splice(from[from.length - 1], 1);
    // Removing shifts later siblings of the same list, and anything nested under them.
    const target = [...to];
    const parent = from.slice(0, -1);
    if (pathKey(target.slice(0, parent.length)) === pathKey(parent) && target[parent.length] > from[from.length - 1]) target[parent.length]--;
    const list = listAt(d, target);
    list.splice(intoEmpty ? 0 : target[target.length - 1] + 1, 0, task);
    return syncJoins(d);
  },
  addBranch(def, path) {
    const d = clone(def);
    const task = listAt(d, path)[path[path.length - 1]];
    task.forkTasks = [...(task.forkTasks || []), template(d, 'SIMPLE')];
    return syncJoins(d);
  },
  addCase(def, path, name) {
    const d = clone(def);
    const task = listAt(d, path)[path[path.length - 1]];
    task.decisionCases = { ...(task.decisionCases || {}), [name]: template(d, 'SIMPLE') };
    return d;
  },
  set(def, path, field, value) {
    const d = clone(def);
    const task = listAt(d, path)[path[path.length - 1]];
    if (value === undefined) delete task[field]; else task[field] = value;
    return syncJoins(d);
  },
};

/** The task at `path`, if there is one (reads only). */
function taskAt(def, path) {
  let here = def;
  for (const step of path) {
    if (here === null || typeof here !== 'object') return undefined;
    here = here[step];
  }
  return here && typeof here === 'object' ? here : undefined;
}

function Properties({ def, node, onChange }) {
  const task = taskAt(def, node.path);
  const [params, setParams] = useState('');
  const [paramsError, setParamsError] = useState(undefined);
  useEffect(() => { setParams(pretty(task?.inputParameters || {})); setParamsError(undefined); }, [node.key, JSON.stringify(task?.inputParameters)]);
  if (!task) return null;
  const text = (field, label) => html`<label>${label}<input name=${field} value=${task[field] ?? ''}
    onChange=${(e) => onChange(edits.set(def, node.path, field, e.target.value))} /></label>`;
  return html`<fieldset class="properties"><legend>${task.taskReferenceName}</legend>
    ${text('name', t('editor.taskName'))}
    ${text('taskReferenceName', t('editor.referenceName'))}
    <label>${t('task.type')} <input value=${task.type || 'SIMPLE'} readonly /></label>
    ${task.type === 'SWITCH' ? text('expression', t('editor.expression')) : null}
    ${task.type === 'DO_WHILE' ? text('loopCondition', t('editor.loopCondition')) : null}
    ${task.type === 'SUB_WORKFLOW' ? html`<label>${t('editor.subWorkflow')}<input value=${task.subWorkflowParam?.name || ''}
      onChange=${(e) => onChange(edits.set(def, node.path, 'subWorkflowParam', { ...(task.subWorkflowParam || {}), name: e.target.value }))} /></label>` : null}
    <label class="check"><input type="checkbox" checked=${!!task.optional} onChange=${(e) => onChange(edits.set(def, node.path, 'optional', e.target.checked || undefined))} /> ${t('editor.optional')}</label>
    <label>${t('editor.inputParameters')}<textarea rows="5" value=${params} onInput=${(e) => {
      setParams(e.target.value);
      const parsed = parseJson(e.target.value);
      if (parsed.error) setParamsError(parsed.error.message); else { setParamsError(undefined); onChange(edits.set(def, node.path, 'inputParameters', parsed.value)); }
    }}></textarea></label>
    ${paramsError ? html`<p class="error" role="alert">${paramsError}</p>` : null}
  </fieldset>`;
}

function Toolbar({ def, node, onChange, moving, setMoving }) {
  const [type, setType] = useState('SIMPLE');
  const [caseName, setCaseName] = useState('');
  if (!node) return html`<p class="muted hint">${t('editor.hint')}</p>`;
  const empty = node.kind === 'empty';
  const task = empty ? undefined : taskAt(def, node.path);
  const add = (after) => onChange(empty ? edits.insert(def, node.path, template(def, type), false) : edits.insert(def, node.path, template(def, type), after));
  return html`<div class="toolbar" role="toolbar" aria-label=${t('editor.toolbar')}>
    <label>${t('editor.newType')} <select value=${type} onChange=${(e) => setType(e.target.value)} name="newType">
      ${INSERTABLE.map((name) => html`<option value=${name}>${name}</option>`)}</select></label>
    ${empty ? html`<button onClick=${() => add(false)}>${t('editor.addHere')}</button>` : html`
      <button onClick=${() => add(false)}>${t('editor.addBefore')}</button>
      <button onClick=${() => add(true)} data-action="add-after">${t('editor.addAfter')}</button>
      <button onClick=${() => onChange(edits.move(def, node.path, -1))} aria-label=${t('editor.moveUp')}>${t('editor.up')}</button>
      <button onClick=${() => onChange(edits.move(def, node.path, 1))} aria-label=${t('editor.moveDown')}>${t('editor.down')}</button>
      <button onClick=${() => setMoving(moving === node.key ? undefined : node)} aria-pressed=${moving === node.key}>${moving === node.key ? t('editor.cancelMove') : t('editor.moveTo')}</button>
      <button class="danger" onClick=${() => onChange(edits.remove(def, node.path))} data-action="remove">${t('editor.remove')}</button>`}
    ${task?.type === 'FORK_JOIN' ? html`<button onClick=${() => onChange(edits.addBranch(def, node.path))}>${t('editor.addBranch')}</button>` : null}
    ${task?.type === 'SWITCH' || task?.type === 'DECISION' ? html`<form class="inline" onSubmit=${(e) => { e.preventDefault(); if (caseName.trim()) { onChange(edits.addCase(def, node.path, caseName.trim())); setCaseName(''); } }}>
      <label>${t('editor.case')} <input value=${caseName} onInput=${(e) => setCaseName(e.target.value)} /></label><button type="submit">${t('editor.addCase')}</button></form>` : null}
    ${task?.type === 'DO_WHILE' && !(task.loopOver || []).length ? html`<button onClick=${() => onChange(edits.insert(def, [...node.path, 'loopOver', 0], template(def, type), false))}>${t('editor.addToLoop')}</button>` : null}
  </div>`;
}

/**
 * The editor. `initial`: the definition to start from; `creating`: saving creates (POST) rather
 * than updates (PUT); `onSaved(def)` runs before the page moves to the saved definition.
 */
export function Editor({ initial, creating, onSaved }) {
  const [def, setDef] = useState(initial);
  const [text, setText] = useState(pretty(initial));
  const [parseError, setParseError] = useState(undefined);
  const [selected, setSelected] = useState(undefined);
  const [moving, setMoving] = useState(undefined);
  const [saveError, setSaveError] = useState(undefined);
  const [saving, setSaving] = useState(false);
  const area = useRef(null);
  const problems = useMemo(() => validate(def), [def]);
  const fromDiagram = (next) => { setDef(next); setText(pretty(next)); setParseError(undefined); setSaveError(undefined); };
  const fromText = (value) => {
    setText(value);
    const parsed = parseJson(value);
    if (parsed.error) { setParseError(parsed.error); return; }
    setParseError(undefined);
    setDef(parsed.value);
  };
  const select = (n) => {
    if (moving && n.key !== moving.key) {
      fromDiagram(edits.relocate(def, moving.path, n.path, n.kind === 'empty'));
      setMoving(undefined);
      setSelected(undefined);
      return;
    }
    setSelected(n);
  };
  const showError = () => {
    if (parseError?.position === undefined || !area.current) return;
    area.current.focus();
    area.current.setSelectionRange(parseError.position, parseError.position + 1);
  };
  const save = async () => {
    setSaveError(undefined);
    if (parseError || problems.length) return;
    setSaving(true);
    try {
      if (creating) await request('POST', '/metadata/workflow', def); else await request('PUT', '/metadata/workflow', [def]);
      onSaved?.(def);
      go(['definitions', def.name], { version: def.version ?? 1 });
    } catch (e) { setSaveError(e); } finally { setSaving(false); }
  };
  const selectedNode = selected && (selected.kind === 'empty' || taskAt(def, selected.path)) ? selected : undefined;
  return html`<div class="editor">
    <div class="editor-diagram">
      <h2>${t('execution.tab.diagram')}</h2>
      <${Toolbar} def=${def} node=${selectedNode} onChange=${fromDiagram} moving=${moving?.key} setMoving=${setMoving} />
      ${moving ? html`<p class="hint" role="status">${t('editor.moving', { ref: moving.task?.taskReferenceName })}</p>` : null}
      <${Diagram} def=${def} editable=${true} selected=${selectedNode?.key} onSelect=${select} />
      ${selectedNode && selectedNode.kind !== 'empty' ? html`<${Properties} def=${def} node=${selectedNode} onChange=${fromDiagram} />` : null}
    </div>
    <div class="editor-json">
      <h2><label for="definition-json">${t('common.json')}</label></h2>
      <textarea id="definition-json" ref=${area} spellcheck="false" value=${text} onInput=${(e) => fromText(e.target.value)}
        aria-invalid=${!!parseError} aria-describedby="definition-problems"></textarea>
      <div id="definition-problems" aria-live="polite">
        ${parseError ? html`<p class="error" data-json-error>
          ${jsonError(parseError)}
          ${parseError.position !== undefined ? html` <button class="link" onClick=${showError}>${t('editor.show')}</button>` : null}
          <br /><span class="muted">${t('editor.lastValid')}</span></p>` : null}
        ${!parseError && problems.length ? html`<ul class="error problems">${problems.map((p) => html`<li>
          <button class="link" onClick=${() => p.key && setSelected({ key: p.key, path: p.key.split('/').map((s) => (/^\d+$/.test(s) ? Number(s) : s)), kind: 'task' })}><code>${p.path}</code></button>: ${p.message}</li>`)}</ul>` : null}
        <${Failure} error=${saveError} />
      </div>
      <div class="buttons">
        <button class="primary" onClick=${save} disabled=${saving || !!parseError || problems.length > 0}>${creating ? t('editor.create') : t('editor.save')}</button>
      </div>
    </div>
  </div>`;
}
