// One execution: its diagram with statuses, a timeline of task attempts, tasks, the event
// history, input, output and variables, and the actions (each confirmed first). Refreshes itself
// while the workflow runs.
import { useEffect, useMemo, useState } from './vendor/hooks.mjs';
import { get, qs, request } from './api.js';
import { Confirm, Failure, Json, Status, TERMINAL, Tabs, duration, headers, html, statusWord, tone, useLoad, when } from './lib.js';
import { Diagram, pathKey } from './diagram.js';
import { number, t } from './i18n.js';
import { href, setQuery } from './router.js';

const tabs = () => [
  { id: 'diagram', label: t('execution.tab.diagram') },
  { id: 'timeline', label: t('execution.tab.timeline') },
  { id: 'tasks', label: t('execution.tab.tasks') },
  { id: 'io', label: t('execution.tab.io') },
  { id: 'events', label: t('execution.tab.events') },
  { id: 'json', label: t('common.json') },
];

function actionsFor(wf, done) {
  const id = encodeURIComponent(wf.workflowId);
  const s = wf.status;
  const list = [];
  if (s === 'RUNNING') list.push({ label: t('action.pause'), title: t('action.pause.title'), body: t('action.pause.body'), confirm: t('action.pause'), run: () => request('PUT', `/workflow/${id}/pause`) });
  if (s === 'PAUSED') list.push({ label: t('action.resume'), title: t('action.resume.title'), body: t('action.resume.body'), confirm: t('action.resume'), run: () => request('PUT', `/workflow/${id}/resume`) });
  if (s === 'RUNNING' || s === 'PAUSED') list.push({ label: t('action.terminate'), danger: true, reason: true, title: t('action.terminate.title'), body: t('action.terminate.body'), confirm: t('action.terminate'), run: (reason) => request('DELETE', `/workflow/${id}${qs({ reason })}`) });
  if (TERMINAL.has(s)) list.push({ label: t('action.restart'), title: t('action.restart.title'), body: t('action.restart.body'), confirm: t('action.restart'), run: () => request('POST', `/workflow/${id}/restart`) });
  if (s === 'FAILED' || s === 'TIMED_OUT' || s === 'TERMINATED') list.push({ label: t('action.retry'), title: t('action.retry.title'), body: t('action.retry.body'), confirm: t('action.retry'), run: () => request('POST', `/workflow/${id}/retry`) });
  return list.map((a) => ({ ...a, run: async (reason) => { await a.run(reason); await done(); } }));
}

function Timeline({ wf, onSelect, selected }) {
  const tasks = [...(wf.tasks || [])].sort((a, b) => a.seq - b.seq);
  const now = Date.now();
  const t0 = Math.min(wf.createTime || wf.startTime || now, ...tasks.map((x) => x.scheduledTime || now));
  const t1 = Math.max(wf.endTime || 0, ...tasks.map((x) => x.endTime || (TERMINAL.has(wf.status) ? x.updateTime || 0 : now)), t0 + 1);
  const span = t1 - t0;
  const pct = (time) => `${(((time - t0) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(0.15, ((b - a) / span) * 100).toFixed(3)}%`;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return html`<div class="gantt" role="table" aria-label=${t('timeline.label')}>
    <div class="gantt-row axis" role="row"><span role="columnheader">${t('timeline.task')}</span>
      <div class="lane" role="columnheader">${ticks.map((f) => html`<span class="tick" style=${`left:${f * 100}%`}>${duration(span * f)}</span>`)}</div></div>
    ${tasks.map((task) => {
      const start = task.startTime || (task.status === 'SCHEDULED' ? now : task.scheduledTime);
      const end = task.endTime || (TERMINAL.has(task.status) || TERMINAL.has(wf.status) ? task.updateTime || start : now);
      return html`<div class=${`gantt-row${selected === task.taskId ? ' selected' : ''}`} role="row" key=${task.taskId} data-task-id=${task.taskId}>
        <button role="rowheader" class="link" onClick=${() => onSelect(task)}>${task.referenceTaskName}${task.retryCount ? html` <span class="muted">${t('timeline.retry', { n: number(task.retryCount) })}</span>` : null}</button>
        <div class="lane" role="cell" title=${t('timeline.bar', { status: statusWord(task.status), queued: duration(start - task.scheduledTime), ran: duration(end - start) })}>
          <span class="bar queued" style=${`left:${pct(task.scheduledTime)};width:${width(task.scheduledTime, start)}`}></span>
          <span class=${`bar tone-${tone(task.status)}`} style=${`left:${pct(start)};width:${width(start, end)}`}></span>
        </div>
      </div>`;
    })}
  </div>`;
}

function TaskTable({ wf, onSelect, selected }) {
  const tasks = [...(wf.tasks || [])].sort((a, b) => a.seq - b.seq);
  return html`<table class="grid">
    ${headers('#', t('task.reference'), t('task.type'), t('task.status'), t('task.worker'), t('task.polls'), t('task.retry'), t('task.scheduled'), t('task.ranFor'))}
    <tbody>${tasks.map((task) => html`<tr key=${task.taskId} class=${selected === task.taskId ? 'selected' : ''}>
      <td>${task.seq}</td><td><button class="link" onClick=${() => onSelect(task)}>${task.referenceTaskName}</button></td><td>${task.taskType}</td>
      <td><${Status} status=${task.status} /></td><td>${task.workerId || ''}</td><td>${task.pollCount ?? 0}</td><td>${task.retryCount ?? 0}</td>
      <td>${when(task.scheduledTime)}</td><td>${task.startTime ? duration((task.endTime || Date.now()) - task.startTime) : '—'}</td></tr>`)}</tbody>
  </table>`;
}

function Events({ id }) {
  const events = useLoad(() => get(`/workflow/${encodeURIComponent(id)}/history`), [id]);
  return html`<${Failure} error=${events.error} />
    <table class="grid events">
      ${headers(t('events.revision'), t('events.time'), t('events.event'), t('events.task'), t('events.details'))}
      <tbody>${(events.data || []).map((e) => {
        const { revision, time, type, referenceTaskName, ...rest } = e;
        return html`<tr key=${revision}><td>${revision}</td><td>${when(time)}</td><td>${type}</td><td>${referenceTaskName || ''}</td>
          <td><code>${Object.keys(rest).length ? JSON.stringify(rest) : ''}</code></td></tr>`;
      })}</tbody>
    </table>`;
}

/** The side panel's frame: the task's name, a close button, and what goes below. */
function Panel({ reference, onClose, children }) {
  return html`<aside class="panel" aria-label=${t('task.panel', { ref: reference })} data-task-panel=${reference}>
    <div class="title-row"><h2>${reference}</h2><button onClick=${onClose} aria-label=${t('task.close')}>✕</button></div>
    ${children}
  </aside>`;
}

function TaskPanel({ wf, task, onClose, onAction }) {
  const logs = useLoad(() => get(`/tasks/${encodeURIComponent(task.taskId)}/log`).catch(() => []), [task.taskId]);
  const attempts = (wf.tasks || []).filter((x) => x.referenceTaskName === task.referenceTaskName);
  const id = encodeURIComponent(wf.workflowId);
  const child = task.subWorkflowId || task.outputData?.subWorkflowId;
  const actions = [];
  if (TERMINAL.has(wf.status)) {
    actions.push({ label: t('action.rerun.label'), title: t('action.rerun.title', { ref: task.referenceTaskName }), body: t('action.rerun.body'), confirm: t('action.rerun'),
      run: () => request('POST', `/workflow/${id}/rerun`, { reRunFromWorkflowId: wf.workflowId, reRunFromTaskId: task.taskId }) });
  }
  const ran = task.startTime ? duration((task.endTime || Date.now()) - task.startTime) : '—';
  const rows = [
    [t('task.status'), html`<${Status} status=${task.status} />`], [t('task.id'), html`<code>${task.taskId}</code>`], [t('task.type'), task.taskType],
    [t('task.definition'), task.taskDefName], [t('task.worker'), task.workerId || '—'], [t('task.polls'), task.pollCount ?? 0], [t('task.retryCount'), task.retryCount ?? 0],
    [t('task.iteration'), task.iteration || '—'], [t('task.scheduled'), when(task.scheduledTime)], [t('task.started'), when(task.startTime)], [t('task.ended'), when(task.endTime)],
    [t('task.queuedFor'), task.startTime ? duration(task.startTime - task.scheduledTime) : '—'], [t('task.ranFor'), ran],
  ];
  return html`<${Panel} reference=${task.referenceTaskName} onClose=${onClose}>
    ${task.reasonForIncompletion ? html`<p class="error">${task.reasonForIncompletion}</p>` : null}
    <dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
    ${child ? html`<p><a href=${href(['execution', child])}>${t('task.openChild', { id: child })}</a></p>` : null}
    <div class="buttons">${actions.map((a) => html`<button onClick=${() => onAction(a)}>${a.label}</button>`)}</div>
    ${attempts.length > 1 ? html`<h3>${t('task.attempts')}</h3><ol>${attempts.map((x) => html`<li><${Status} status=${x.status} /> ${when(x.startTime || x.scheduledTime)} ${x.reasonForIncompletion || ''}</li>`)}</ol>` : null}
    <h3>${t('task.input')}</h3><${Json} value=${task.inputData} label=${t('task.inputLabel')} />
    <h3>${t('task.output')}</h3><${Json} value=${task.outputData} label=${t('task.outputLabel')} />
    <h3>${t('task.logs')}</h3>
    ${(logs.data || []).length ? html`<ol class="logs">${logs.data.map((l) => html`<li><span class="muted">${when(l.createdTime)}</span> ${l.log}</li>`)}</ol>` : html`<p class="muted">${t('task.noLogs')}</p>`}
  <//>`;
}

/** The diagram key (JSON path) of the definition task an execution task ran. */
function nodeKeyOf(def, task) {
  if (!task) return undefined;
  const refs = [task.referenceTaskName, task.referenceTaskName.replace(/__\d+$/, '')];
  const find = (tasks, base) => {
    for (let i = 0; i < (tasks || []).length; i++) {
      const t = tasks[i];
      const path = [...base, i];
      if (refs.includes(t.taskReferenceName)) return pathKey(path);
      const nested = [
        ...(t.forkTasks || []).map((b, j) => find(b, [...path, 'forkTasks', j])),
        ...Object.entries(t.decisionCases || {}).map(([k, b]) => find(b, [...path, 'decisionCases', k])),
        find(t.defaultCase, [...path, 'defaultCase']), find(t.loopOver, [...path, 'loopOver']),
      ].find(Boolean);
      if (nested) return nested;
    }
    return undefined;
  };
  return find(def.tasks, ['tasks']);
}

/** A task of the definition this execution has not reached: it can be skipped in advance. */
function PendingPanel({ wf, task, onClose, onAction }) {
  const id = encodeURIComponent(wf.workflowId);
  const ref = task.taskReferenceName;
  const canSkip = wf.status === 'RUNNING' || wf.status === 'PAUSED';
  return html`<${Panel} reference=${ref} onClose=${onClose}>
    <p><span class="badge tone-muted">${t('task.notRun')}</span> ${t('task.notScheduled', { type: task.type || 'SIMPLE' })}</p>
    ${canSkip ? html`<div class="buttons"><button onClick=${() => onAction({ label: t('action.skip'), title: t('action.skip.title', { ref }),
      body: t('action.skip.body'), confirm: t('action.skip'),
      run: () => request('PUT', `/workflow/${id}/skiptask/${encodeURIComponent(ref)}`, {}) })}>${t('action.skip.label')}</button></div>` : null}
    <h3>${t('task.definitionHeading')}</h3><${Json} value=${task} label=${t('task.definitionLabel')} />
  <//>`;
}

/** The definition's task with this reference name, anywhere in the tree. */
function definedTask(def, ref) {
  const find = (tasks) => {
    for (const t of tasks || []) {
      if (t.taskReferenceName === ref) return t;
      const nested = [...(t.forkTasks || []), ...Object.values(t.decisionCases || {}), t.defaultCase, t.loopOver].map(find).find(Boolean);
      if (nested) return nested;
    }
    return undefined;
  };
  return find(def.tasks);
}

export function Execution({ id, query: q }) {
  const [ask, setAsk] = useState(undefined);
  const [status, setStatus] = useState(undefined);
  const live = !status || !TERMINAL.has(status);
  const wf = useLoad(() => get(`/workflow/${encodeURIComponent(id)}?includeTasks=true`), [id], live ? 2000 : 0);
  const w = wf.data;
  useEffect(() => setStatus(w?.status), [w?.status]);
  const tab = q.get('tab') || 'diagram';
  const selectedRef = q.get('task');
  const def = w?.workflowDefinition || { tasks: [] };
  const selectedTask = useMemo(() => {
    if (!w || !selectedRef) return undefined;
    const matching = (w.tasks || []).filter((x) => x.taskId === selectedRef || x.referenceTaskName === selectedRef
      || x.referenceTaskName.replace(/__\d+$/, '') === selectedRef);
    return matching.sort((a, b) => b.seq - a.seq)[0];
  }, [w, selectedRef]);
  const pending = !selectedTask && selectedRef ? definedTask(def, selectedRef) : undefined;
  const nodeKey = useMemo(() => nodeKeyOf(def, selectedTask || (pending && { referenceTaskName: pending.taskReferenceName })), [selectedTask, pending, def]);
  if (!w) return html`<section><h1>${t('execution.title', { id })}</h1>${wf.error ? html`<${Failure} error=${wf.error} />` : html`<p>${t('common.loading')}</p>`}</section>`;
  const select = (task) => setQuery({ task: task.taskId });
  const selectNode = (n) => n.task && setQuery({ task: n.task.taskReferenceName });
  const started = w.startTime || w.createTime;
  return html`<section class="execution" data-workflow-status=${w.status}>
    <div class="title-row">
      <h1>${w.workflowName || def.name} <span class="muted">v${w.workflowVersion || def.version}</span> <${Status} status=${w.status} /></h1>
      <div class="buttons actions">${actionsFor(w, wf.reload).map((a) => html`<button class=${a.danger ? 'danger' : ''} onClick=${() => setAsk(a)}>${a.label}</button>`)}</div>
    </div>
    <dl class="facts wide">
      <dt>${t('executions.workflowId')}</dt><dd><code>${w.workflowId}</code></dd>
      <dt>${t('executions.correlationId')}</dt><dd>${w.correlationId || '—'}</dd>
      <dt>${t('executions.started')}</dt><dd>${when(started)}</dd>
      <dt>${t('executions.ended')}</dt><dd>${when(w.endTime)}</dd>
      <dt>${t('executions.duration')}</dt><dd>${duration((w.endTime || Date.now()) - started)}</dd>
      ${w.parentWorkflowId ? html`<dt>${t('execution.parent')}</dt><dd><a href=${href(['execution', w.parentWorkflowId])}>${w.parentWorkflowId}</a></dd>` : null}
      <dt>${t('execution.definition')}</dt><dd><a href=${href(['definitions', def.name], { version: def.version })}>${def.name} v${def.version}</a></dd>
      ${live ? html`<dt>${t('execution.updates')}</dt><dd><span class="live" aria-live="polite">${t('execution.live', { every: duration(2000) })}</span></dd>` : null}
    </dl>
    ${w.reasonForIncompletion ? html`<p class="error" role="status">${w.reasonForIncompletion}</p>` : null}
    <${Failure} error=${wf.error} />
    <${Tabs} tabs=${tabs()} current=${tab} onSelect=${(id) => setQuery({ tab: id === 'diagram' ? '' : id })} />
    <div class=${`split${selectedTask || pending ? ' with-panel' : ''}`}>
      <div class="tab-body" role="tabpanel" aria-labelledby=${`tab-${tab}`}>
        ${tab === 'diagram' ? html`<${Diagram} def=${def} tasks=${w.tasks || []} selected=${nodeKey} onSelect=${selectNode} />` : null}
        ${tab === 'timeline' ? html`<${Timeline} wf=${w} onSelect=${select} selected=${selectedTask?.taskId} />` : null}
        ${tab === 'tasks' ? html`<${TaskTable} wf=${w} onSelect=${select} selected=${selectedTask?.taskId} />` : null}
        ${tab === 'io' ? html`<div class="columns">
            <div><h2>${t('execution.input')}</h2><${Json} value=${w.input} label=${t('execution.inputLabel')} /></div>
            <div><h2>${t('execution.output')}</h2><${Json} value=${w.output} label=${t('execution.outputLabel')} /></div>
            <div><h2>${t('execution.variables')}</h2><${Json} value=${w.variables || {}} label=${t('execution.variablesLabel')} /></div></div>` : null}
        ${tab === 'events' ? html`<${Events} id=${w.workflowId} />` : null}
        ${tab === 'json' ? html`<${Json} value=${w} label=${t('execution.jsonLabel')} />` : null}
      </div>
      ${selectedTask ? html`<${TaskPanel} wf=${w} task=${selectedTask} onClose=${() => setQuery({ task: '' })}
        onAction=${(a) => setAsk({ ...a, run: async (r) => { await a.run(r); await wf.reload(); } })} />` : null}
      ${pending ? html`<${PendingPanel} wf=${w} task=${pending} onClose=${() => setQuery({ task: '' })}
        onAction=${(a) => setAsk({ ...a, run: async () => { await a.run(); await wf.reload(); } })} />` : null}
    </div>
    <${Confirm} ask=${ask} onClose=${() => setAsk(undefined)} />
  </section>`;
}
