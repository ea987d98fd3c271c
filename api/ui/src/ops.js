// Operations: schedules (next fire times, pause and resume), queues (depth and last polls),
// event handlers (their queues, lag and last error) and the cluster (members, leader, term,
// replication lag).
import { useState } from './vendor/hooks.mjs';
import { get, qs, request } from './api.js';
import { Confirm, Failure, html, useLoad, when } from './lib.js';
import { href } from './router.js';

export function Schedules() {
  const [ask, setAsk] = useState(undefined);
  const list = useLoad(async () => {
    const schedules = (await get('/scheduler/schedules')) || [];
    // The next few times after the next run, for schedules whose zone the API computes in (UTC).
    await Promise.all(schedules.map(async (s) => {
      const utc = !s.zoneId || s.zoneId === 'UTC' || s.zoneId === 'GMT';
      if (s.paused || !utc || !s.nextRunTime) return;
      s.upcoming = await get(`/scheduler/nextFewSchedules${qs({ cronExpression: s.cronExpression, scheduleStartTime: s.nextRunTime + 1, scheduleEndTime: s.scheduleEndTime, limit: 2 })}`).catch(() => []);
    }));
    return schedules;
  }, [], 10000);
  const toggle = (s) => setAsk({
    title: `${s.paused ? 'Resume' : 'Pause'} the schedule ${s.name}?`,
    body: s.paused ? 'It starts workflows again from its next fire time.' : 'It starts no workflows until it is resumed.',
    confirm: s.paused ? 'Resume' : 'Pause',
    run: async () => { await request('PUT', `/scheduler/schedules/${encodeURIComponent(s.name)}/${s.paused ? 'resume' : 'pause'}`); await list.reload(); },
  });
  const rows = list.data || [];
  return html`<section>
    <h1>Schedules</h1>
    <${Failure} error=${list.error} />
    <table class="grid">
      <thead><tr><th scope="col">Name</th><th scope="col">Workflow</th><th scope="col">Cron</th><th scope="col">Zone</th><th scope="col">State</th><th scope="col">Next fire times</th><th scope="col">Action</th></tr></thead>
      <tbody>${rows.map((s) => html`<tr key=${s.name} data-schedule=${s.name}>
        <td>${s.name}</td>
        <td><a href=${href('executions', { type: s.startWorkflowRequest?.name })}>${s.startWorkflowRequest?.name} ${s.startWorkflowRequest?.version ? `v${s.startWorkflowRequest.version}` : ''}</a></td>
        <td><code>${s.cronExpression}</code></td><td>${s.zoneId || 'UTC'}</td>
        <td>${s.paused ? html`<span class="badge tone-wait">PAUSED</span>${s.pausedReason ? ` ${s.pausedReason}` : ''}` : html`<span class="badge tone-ok">ACTIVE</span>`}</td>
        <td>${s.paused ? '—' : html`<ul class="times">${[s.nextRunTime, ...(s.upcoming || [])].filter(Boolean).map((t) => html`<li>${when(t)}</li>`)}</ul>`}</td>
        <td><button onClick=${() => toggle(s)}>${s.paused ? 'Resume' : 'Pause'}</button></td></tr>`)}
        ${!rows.length && !list.loading ? html`<tr><td colspan="7" class="empty">No schedules. Create them with POST /api/scheduler/schedules.</td></tr>` : null}
      </tbody>
    </table>
    <${Confirm} ask=${ask} onClose=${() => setAsk(undefined)} />
  </section>`;
}

export function Queues() {
  const data = useLoad(async () => {
    const [sizes, polls, defs] = await Promise.all([get('/tasks/queue/all'), get('/tasks/queue/polldata/all'), get('/metadata/taskdefs')]);
    const names = new Set([...Object.keys(sizes || {}), ...(polls || []).map((p) => p.queueName), ...(defs || []).map((d) => d.name)]);
    return [...names].sort().map((name) => ({
      name, size: (sizes || {})[name] || 0, polls: (polls || []).filter((p) => p.queueName === name).sort((a, b) => b.lastPollTime - a.lastPollTime),
    }));
  }, [], 3000);
  return html`<section>
    <h1>Queues</h1>
    <p class="muted">Tasks waiting for a worker, by task type, and the workers that polled each queue last. Refreshes every 3 s.</p>
    <${Failure} error=${data.error} />
    <table class="grid">
      <thead><tr><th scope="col">Task type</th><th scope="col">Waiting</th><th scope="col">Last poll</th><th scope="col">Workers (last poll)</th></tr></thead>
      <tbody>${(data.data || []).map((q) => html`<tr key=${q.name} data-queue=${q.name}>
        <td>${q.name}</td><td class="num" data-size>${q.size}</td><td>${q.polls[0] ? when(q.polls[0].lastPollTime) : 'never'}</td>
        <td>${q.polls.map((p) => html`<span class="chip">${p.workerId || '?'}${p.domain ? ` @${p.domain}` : ''}</span>`)}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

export function EventHandlers() {
  const data = useLoad(() => get('/event/queues'), [], 3000);
  const rows = data.data || [];
  return html`<section>
    <h1>Event handlers</h1>
    <p class="muted">Each handler's queue as the leader consumes it: messages handled, messages waiting on the broker (Kafka) and the last thing that went wrong. Refreshes every 3 s.</p>
    <${Failure} error=${data.error} />
    <table class="grid">
      <thead><tr><th scope="col">Handler</th><th scope="col">Queue</th><th scope="col">State</th><th scope="col">Handled</th><th scope="col">Lag</th><th scope="col">Failed</th><th scope="col">Last error</th></tr></thead>
      <tbody>${rows.map((h) => html`<tr key=${h.name} data-handler=${h.name}>
        <td>${h.name}</td><td><code>${h.event}</code></td>
        <td>${!h.active ? html`<span class="badge tone-wait">INACTIVE</span>` : h.consuming ? html`<span class="badge tone-ok">CONSUMING</span>` : html`<span class="badge tone-bad">NOT CONSUMING</span>`}</td>
        <td class="num" data-handled>${h.handled ?? '—'}</td>
        <td class="num" data-lag>${h.lag ?? '—'}</td>
        <td class="num">${(h.failed || 0) + (h.invalid || 0)}</td>
        <td data-error>${h.lastError ? html`${h.lastError} <span class="muted">(${when(h.lastErrorTime)})</span>` : '—'}</td></tr>`)}
        ${!rows.length && !data.loading ? html`<tr><td colspan="7" class="empty">No event handlers. Add them with POST /api/event.</td></tr>` : null}
      </tbody>
    </table>
  </section>`;
}

export function Cluster() {
  const status = useLoad(() => get('/cluster/status?consistent=true').catch(() => get('/cluster/status')), [], 3000);
  const local = useLoad(() => get('/cluster/status'), [], 3000);
  const s = status.data;
  const replication = s?.replication || {};
  return html`<section>
    <h1>Cluster</h1>
    <${Failure} error=${status.error} />
    ${s ? html`<dl class="facts wide">
      <dt>Leader</dt><dd>${s.leader ? `node ${s.leader}` : 'none'} ${s.leaderAddress ? html`<code>${s.leaderAddress}</code>` : null}</dd>
      <dt>Term</dt><dd>${s.term}</dd>
      <dt>Log</dt><dd>last ${s.lastLogIndex}, committed ${s.commitIndex}, applied ${s.appliedIndex}</dd>
      <dt>Snapshot</dt><dd>${s.snapshotIndex ?? 'none'} (purged up to ${s.purgedIndex ?? 'none'})</dd>
      <dt>This page's node</dt><dd>${local.data ? `node ${local.data.nodeId} (${local.data.state}), applied ${local.data.appliedIndex}` : '…'}</dd>
    </dl>
    <table class="grid">
      <thead><tr><th scope="col">Node</th><th scope="col">Address</th><th scope="col">Role</th><th scope="col">Matched index</th><th scope="col">Replication lag</th></tr></thead>
      <tbody>${(s.members || []).map((m) => {
        const r = replication[m.id];
        const leader = m.id === s.leader;
        return html`<tr key=${m.id} data-node=${m.id}><td>${m.id}</td><td><code>${m.address}</code></td>
          <td>${leader ? 'leader' : m.voter ? 'follower' : 'learner'}</td>
          <td>${leader ? s.lastLogIndex : r ? r.matchedIndex : '—'}</td>
          <td>${leader ? '—' : r ? `${r.lag} entries` : 'unknown'}</td></tr>`;
      })}</tbody>
    </table>
    <${Partitions} status=${s} />` : html`<p>Loading…</p>`}
  </section>`;
}

// Which node leads each partition (a Raft group of its own) and which should; nothing for a
// cluster that is one group.
function Partitions({ status }) {
  const groups = (status.groups || []).filter((g) => g.group > 0);
  if (!groups.length) return null;
  const led = {};
  for (const g of groups) if (g.leader) led[g.leader] = (led[g.leader] || 0) + 1;
  return html`<h2>Partitions</h2>
    <p>${`${groups.length} partitions beside the metadata group (led by node ${status.leader ?? 'none'}). `}
      ${Object.entries(led).map(([node, n]) => `Node ${node} leads ${n}.`).join(' ')}</p>
    <table class="grid">
      <thead><tr><th scope="col">Partition</th><th scope="col">Leader</th><th scope="col">Preferred leader</th><th scope="col">Term</th></tr></thead>
      <tbody>${groups.map((g) => html`<tr key=${g.group} data-partition=${g.group}>
        <td>${g.group}</td><td>${g.leader ? `node ${g.leader}` : 'none'}</td>
        <td>${g.preferredLeader ? `node ${g.preferredLeader}` : '—'}${g.leader && g.preferredLeader && g.leader !== g.preferredLeader ? ' (moving)' : ''}</td>
        <td>${g.term}</td></tr>`)}</tbody>
    </table>`;
}
