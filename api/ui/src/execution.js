// One execution: its diagram with statuses, a timeline of task attempts, tasks, the event
// history, input, output and variables, and the actions (each confirmed first). Refreshes itself
// while the workflow runs.
import { useEffect, useMemo, useState } from './vendor/hooks.mjs';
import { get, qs, request } from './api.js';
import { Confirm, Failure, Json, Status, TERMINAL, Tabs, duration, html, tone, useLoad, when } from './lib.js';
import { Diagram, pathKey } from './diagram.js';
import { href, setQuery } from './router.js';

const TABS = [
  { id: 'diagram', label: 'Diagram' },
  { id: 'timeline', label: 'Timeline' },
  { id: 'tasks', label: 'Tasks' },
  { id: 'io', label: 'Input and output' },
  { id: 'events', label: 'Event history' },
  { id: 'json', label: 'JSON' },
];

function actionsFor(wf, done) {
  const id = encodeURIComponent(wf.workflowId);
  const s = wf.status;
  const list = [];
  if (s === 'RUNNING') list.push({ label: 'Pause', title: 'Pause this workflow?', body: 'No new tasks are scheduled until it is resumed; running tasks finish.', confirm: 'Pause', run: () => request('PUT', `/workflow/${id}/pause`) });
  if (s === 'PAUSED') list.push({ label: 'Resume', title: 'Resume this workflow?', body: 'It carries on from where it was paused.', confirm: 'Resume', run: () => request('PUT', `/workflow/${id}/resume`) });
  if (s === 'RUNNING' || s === 'PAUSED') list.push({ label: 'Terminate', danger: true, reason: true, title: 'Terminate this workflow?', body: 'Its running tasks are canceled and it ends as TERMINATED. This cannot be undone, but it can be restarted or retried.', confirm: 'Terminate', run: (reason) => request('DELETE', `/workflow/${id}${qs({ reason })}`) });
  if (TERMINAL.has(s)) list.push({ label: 'Restart', title: 'Restart this workflow?', body: 'It starts again from the beginning with the same input and id; its task history is replaced.', confirm: 'Restart', run: () => request('POST', `/workflow/${id}/restart`) });
  if (s === 'FAILED' || s === 'TIMED_OUT' || s === 'TERMINATED') list.push({ label: 'Retry', title: 'Retry the failed task?', body: 'The last failed task is scheduled again and the workflow resumes from there.', confirm: 'Retry', run: () => request('POST', `/workflow/${id}/retry`) });
  return list.map((a) => ({ ...a, run: async (reason) => { await a.run(reason); await done(); } }));
}

function Timeline({ wf, onSelect, selected }) {
  const tasks = [...(wf.tasks || [])].sort((a, b) => a.seq - b.seq);
  const now = Date.now();
  const t0 = Math.min(wf.createTime || wf.startTime || now, ...tasks.map((t) => t.scheduledTime || now));
  const t1 = Math.max(wf.endTime || 0, ...tasks.map((t) => t.endTime || (TERMINAL.has(wf.status) ? t.updateTime || 0 : now)), t0 + 1);
  const span = t1 - t0;
  const pct = (t) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(0.15, ((b - a) / span) * 100).toFixed(3)}%`;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return html`<div class="gantt" role="table" aria-label="Timeline of task attempts">
    <div class="gantt-row axis" role="row"><span role="columnheader">Task</span>
      <div class="lane" role="columnheader">${ticks.map((f) => html`<span class="tick" style=${`left:${f * 100}%`}>${duration(span * f)}</span>`)}</div></div>
    ${tasks.map((t) => {
      const start = t.startTime || (t.status === 'SCHEDULED' ? now : t.scheduledTime);
      const end = t.endTime || (TERMINAL.has(t.status) || TERMINAL.has(wf.status) ? t.updateTime || start : now);
      return html`<div class=${`gantt-row${selected === t.taskId ? ' selected' : ''}`} role="row" key=${t.taskId} data-task-id=${t.taskId}>
        <button role="rowheader" class="link" onClick=${() => onSelect(t)}>${t.referenceTaskName}${t.retryCount ? html` <span class="muted">retry ${t.retryCount}</span>` : null}</button>
        <div class="lane" role="cell" title=${`${t.status}: queued ${duration(start - t.scheduledTime)}, ran ${duration(end - start)}`}>
          <span class="bar queued" style=${`left:${pct(t.scheduledTime)};width:${width(t.scheduledTime, start)}`}></span>
          <span class=${`bar tone-${tone(t.status)}`} style=${`left:${pct(start)};width:${width(start, end)}`}></span>
        </div>
      </div>`;
    })}
  </div>`;
}

function TaskTable({ wf, onSelect, selected }) {
  const tasks = [...(wf.tasks || [])].sort((a, b) => a.seq - b.seq);
  return html`<table class="grid">
    <thead><tr><th scope="col">#</th><th scope="col">Reference</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Worker</th>
      <th scope="col">Polls</th><th scope="col">Retry</th><th scope="col">Scheduled</th><th scope="col">Ran for</th></tr></thead>
    <tbody>${tasks.map((t) => html`<tr key=${t.taskId} class=${selected === t.taskId ? 'selected' : ''}>
      <td>${t.seq}</td><td><button class="link" onClick=${() => onSelect(t)}>${t.referenceTaskName}</button></td><td>${t.taskType}</td>
      <td><${Status} status=${t.status} /></td><td>${t.workerId || ''}</td><td>${t.pollCount ?? 0}</td><td>${t.retryCount ?? 0}</td>
      <td>${when(t.scheduledTime)}</td><td>${t.startTime ? duration((t.endTime || Date.now()) - t.startTime) : '—'}</td></tr>`)}</tbody>
  </table>`;
}

function Events({ id }) {
  const events = useLoad(() => get(`/workflow/${encodeURIComponent(id)}/history`), [id]);
  return html`<${Failure} error=${events.error} />
    <table class="grid events">
      <thead><tr><th scope="col">Revision</th><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Task</th><th scope="col">Details</th></tr></thead>
      <tbody>${(events.data || []).map((e) => {
        const { revision, time, type, referenceTaskName, ...rest } = e;
        return html`<tr key=${revision}><td>${revision}</td><td>${when(time)}</td><td>${type}</td><td>${referenceTaskName || ''}</td>
          <td><code>${Object.keys(rest).length ? JSON.stringify(rest) : ''}</code></td></tr>`;
      })}</tbody>
    </table>`;
}

function TaskPanel({ wf, task, onClose, onAction }) {
  const logs = useLoad(() => get(`/tasks/${encodeURIComponent(task.taskId)}/log`).catch(() => []), [task.taskId]);
  const attempts = (wf.tasks || []).filter((t) => t.referenceTaskName === task.referenceTaskName);
  const id = encodeURIComponent(wf.workflowId);
  const child = task.subWorkflowId || task.outputData?.subWorkflowId;
  const actions = [];
  if (TERMINAL.has(wf.status)) {
    actions.push({ label: 'Rerun from this task', title: `Rerun from ${task.referenceTaskName}?`, body: 'The workflow runs again from this task; the tasks after it are scheduled anew.', confirm: 'Rerun',
      run: () => request('POST', `/workflow/${id}/rerun`, { reRunFromWorkflowId: wf.workflowId, reRunFromTaskId: task.taskId }) });
  }
  const rows = [
    ['Status', html`<${Status} status=${task.status} />`], ['Task id', html`<code>${task.taskId}</code>`], ['Type', task.taskType],
    ['Task definition', task.taskDefName], ['Worker', task.workerId || '—'], ['Polls', task.pollCount ?? 0], ['Retry count', task.retryCount ?? 0],
    ['Iteration', task.iteration || '—'], ['Scheduled', when(task.scheduledTime)], ['Started', when(task.startTime)], ['Ended', when(task.endTime)],
    ['Queued for', task.startTime ? duration(task.startTime - task.scheduledTime) : '—'], ['Ran for', task.startTime ? duration((task.endTime || Date.now()) - task.startTime) : '—'],
  ];
  return html`<aside class="panel" aria-label=${`Task ${task.referenceTaskName}`} data-task-panel=${task.referenceTaskName}>
    <div class="title-row"><h2>${task.referenceTaskName}</h2><button onClick=${onClose} aria-label="Close the task panel">✕</button></div>
    ${task.reasonForIncompletion ? html`<p class="error">${task.reasonForIncompletion}</p>` : null}
    <dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
    ${child ? html`<p><a href=${href(['execution', child])}>Open the sub-workflow ${child} ↗</a></p>` : null}
    <div class="buttons">${actions.map((a) => html`<button onClick=${() => onAction(a)}>${a.label}</button>`)}</div>
    ${attempts.length > 1 ? html`<h3>Attempts</h3><ol>${attempts.map((t) => html`<li><${Status} status=${t.status} /> ${when(t.startTime || t.scheduledTime)} ${t.reasonForIncompletion || ''}</li>`)}</ol>` : null}
    <h3>Input</h3><${Json} value=${task.inputData} label="Task input" />
    <h3>Output</h3><${Json} value=${task.outputData} label="Task output" />
    <h3>Logs</h3>
    ${(logs.data || []).length ? html`<ol class="logs">${logs.data.map((l) => html`<li><span class="muted">${when(l.createdTime)}</span> ${l.log}</li>`)}</ol>` : html`<p class="muted">No logs.</p>`}
  </aside>`;
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
  const canSkip = wf.status === 'RUNNING' || wf.status === 'PAUSED';
  return html`<aside class="panel" aria-label=${`Task ${task.taskReferenceName}`} data-task-panel=${task.taskReferenceName}>
    <div class="title-row"><h2>${task.taskReferenceName}</h2><button onClick=${onClose} aria-label="Close the task panel">✕</button></div>
    <p><span class="badge tone-muted">NOT RUN</span> This ${task.type || 'SIMPLE'} task has not been scheduled in this execution.</p>
    ${canSkip ? html`<div class="buttons"><button onClick=${() => onAction({ label: 'Skip', title: `Skip ${task.taskReferenceName}?`,
      body: 'When the workflow reaches it, it is marked SKIPPED and the workflow moves on without its output.', confirm: 'Skip',
      run: () => request('PUT', `/workflow/${id}/skiptask/${encodeURIComponent(task.taskReferenceName)}`, {}) })}>Skip this task</button></div>` : null}
    <h3>Definition</h3><${Json} value=${task} label="Task definition in the workflow" />
  </aside>`;
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
    const matching = (w.tasks || []).filter((t) => t.taskId === selectedRef || t.referenceTaskName === selectedRef
      || t.referenceTaskName.replace(/__\d+$/, '') === selectedRef);
    return matching.sort((a, b) => b.seq - a.seq)[0];
  }, [w, selectedRef]);
  const pending = !selectedTask && selectedRef ? definedTask(def, selectedRef) : undefined;
  const nodeKey = useMemo(() => nodeKeyOf(def, selectedTask || (pending && { referenceTaskName: pending.taskReferenceName })), [selectedTask, pending, def]);
  if (!w) return html`<section><h1>Execution ${id}</h1>${wf.error ? html`<${Failure} error=${wf.error} />` : html`<p>Loading…</p>`}</section>`;
  const select = (t) => setQuery({ task: t.taskId });
  const selectNode = (n) => n.task && setQuery({ task: n.task.taskReferenceName });
  const started = w.startTime || w.createTime;
  return html`<section class="execution" data-workflow-status=${w.status}>
    <div class="title-row">
      <h1>${w.workflowName || def.name} <span class="muted">v${w.workflowVersion || def.version}</span> <${Status} status=${w.status} /></h1>
      <div class="buttons actions">${actionsFor(w, wf.reload).map((a) => html`<button class=${a.danger ? 'danger' : ''} onClick=${() => setAsk(a)}>${a.label}</button>`)}</div>
    </div>
    <dl class="facts wide">
      <dt>Workflow id</dt><dd><code>${w.workflowId}</code></dd>
      <dt>Correlation id</dt><dd>${w.correlationId || '—'}</dd>
      <dt>Started</dt><dd>${when(started)}</dd>
      <dt>Ended</dt><dd>${when(w.endTime)}</dd>
      <dt>Duration</dt><dd>${duration((w.endTime || Date.now()) - started)}</dd>
      ${w.parentWorkflowId ? html`<dt>Parent</dt><dd><a href=${href(['execution', w.parentWorkflowId])}>${w.parentWorkflowId}</a></dd>` : null}
      <dt>Definition</dt><dd><a href=${href(['definitions', def.name], { version: def.version })}>${def.name} v${def.version}</a></dd>
      ${live ? html`<dt>Updates</dt><dd><span class="live" aria-live="polite">live, every 2 s</span></dd>` : null}
    </dl>
    ${w.reasonForIncompletion ? html`<p class="error" role="status">${w.reasonForIncompletion}</p>` : null}
    <${Failure} error=${wf.error} />
    <${Tabs} tabs=${TABS} current=${tab} onSelect=${(t) => setQuery({ tab: t === 'diagram' ? '' : t })} />
    <div class=${`split${selectedTask || pending ? ' with-panel' : ''}`}>
      <div class="tab-body" role="tabpanel" aria-labelledby=${`tab-${tab}`}>
        ${tab === 'diagram' ? html`<${Diagram} def=${def} tasks=${w.tasks || []} selected=${nodeKey} onSelect=${selectNode} />` : null}
        ${tab === 'timeline' ? html`<${Timeline} wf=${w} onSelect=${select} selected=${selectedTask?.taskId} />` : null}
        ${tab === 'tasks' ? html`<${TaskTable} wf=${w} onSelect=${select} selected=${selectedTask?.taskId} />` : null}
        ${tab === 'io' ? html`<div class="columns">
            <div><h2>Input</h2><${Json} value=${w.input} label="Workflow input" /></div>
            <div><h2>Output</h2><${Json} value=${w.output} label="Workflow output" /></div>
            <div><h2>Variables</h2><${Json} value=${w.variables || {}} label="Workflow variables" /></div></div>` : null}
        ${tab === 'events' ? html`<${Events} id=${w.workflowId} />` : null}
        ${tab === 'json' ? html`<${Json} value=${w} label="Execution JSON" />` : null}
      </div>
      ${selectedTask ? html`<${TaskPanel} wf=${w} task=${selectedTask} onClose=${() => setQuery({ task: '' })}
        onAction=${(a) => setAsk({ ...a, run: async (r) => { await a.run(r); await wf.reload(); } })} />` : null}
      ${pending ? html`<${PendingPanel} wf=${w} task=${pending} onClose=${() => setQuery({ task: '' })}
        onAction=${(a) => setAsk({ ...a, run: async () => { await a.run(); await wf.reload(); } })} />` : null}
    </div>
    <${Confirm} ask=${ask} onClose=${() => setAsk(undefined)} />
  </section>`;
}
