// Operations: schedules (next fire times, pause and resume), queues (depth and last polls),
// event handlers (their queues, lag and last error) and the cluster (members, leader, term,
// replication lag).
import { useState } from './vendor/hooks.mjs';
import { get, qs, request } from './api.js';
import { Confirm, Failure, Status, headers, html, roleWord, useLoad, when } from './lib.js';
import { duration, number, relative, t } from './i18n.js';
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
    title: t(s.paused ? 'schedules.resume.title' : 'schedules.pause.title', { name: s.name }),
    body: t(s.paused ? 'schedules.resume.body' : 'schedules.pause.body'),
    confirm: t(s.paused ? 'action.resume' : 'action.pause'),
    run: async () => { await request('PUT', `/scheduler/schedules/${encodeURIComponent(s.name)}/${s.paused ? 'resume' : 'pause'}`); await list.reload(); },
  });
  const rows = list.data || [];
  return html`<section>
    <h1>${t('nav.schedules')}</h1>
    <${Failure} error=${list.error} />
    <table class="grid">
      ${headers(t('common.name'), t('schedules.workflow'), t('schedules.cron'), t('schedules.zone'), t('common.state'), t('schedules.next'), t('schedules.action'))}
      <tbody>${rows.map((s) => html`<tr key=${s.name} data-schedule=${s.name}>
        <td>${s.name}</td>
        <td><a href=${href('executions', { type: s.startWorkflowRequest?.name })}>${s.startWorkflowRequest?.name} ${s.startWorkflowRequest?.version ? `v${s.startWorkflowRequest.version}` : ''}</a></td>
        <td><code>${s.cronExpression}</code></td><td>${s.zoneId || 'UTC'}</td>
        <td>${s.paused ? html`<${Status} status="PAUSED" />${s.pausedReason ? ` ${s.pausedReason}` : ''}` : html`<span class="badge tone-ok">${t('schedules.active')}</span>`}</td>
        <td>${s.paused ? '—' : html`<ul class="times">${[s.nextRunTime, ...(s.upcoming || [])].filter(Boolean).map((time) => html`<li>${when(time)} <span class="muted">${relative(time)}</span></li>`)}</ul>`}</td>
        <td><button onClick=${() => toggle(s)}>${t(s.paused ? 'action.resume' : 'action.pause')}</button></td></tr>`)}
        ${!rows.length && !list.loading ? html`<tr><td colspan="7" class="empty">${t('schedules.none')}</td></tr>` : null}
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
    <h1>${t('nav.queues')}</h1>
    <p class="muted">${t('queues.intro', { every: duration(3000) })}</p>
    <${Failure} error=${data.error} />
    <table class="grid">
      ${headers(t('queues.taskType'), t('queues.waiting'), t('queues.lastPoll'), t('queues.workers'))}
      <tbody>${(data.data || []).map((q) => html`<tr key=${q.name} data-queue=${q.name}>
        <td>${q.name}</td><td class="num" data-size>${number(q.size)}</td><td>${q.polls[0] ? when(q.polls[0].lastPollTime) : t('queues.never')}</td>
        <td>${q.polls.map((p) => html`<span class="chip">${p.workerId || '?'}${p.domain ? ` @${p.domain}` : ''}</span>`)}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

export function EventHandlers() {
  const data = useLoad(() => get('/event/queues'), [], 3000);
  const rows = data.data || [];
  return html`<section>
    <h1>${t('nav.events')}</h1>
    <p class="muted">${t('handlers.intro', { every: duration(3000) })}</p>
    <${Failure} error=${data.error} />
    <table class="grid">
      ${headers(t('handlers.handler'), t('handlers.queue'), t('common.state'), t('handlers.handled'), t('handlers.lag'), t('handlers.failed'), t('handlers.lastError'))}
      <tbody>${rows.map((h) => html`<tr key=${h.name} data-handler=${h.name}>
        <td>${h.name}</td><td><code>${h.event}</code></td>
        <td>${!h.active ? html`<span class="badge tone-wait">${t('handlers.inactive')}</span>` : h.consuming ? html`<span class="badge tone-ok">${t('handlers.consuming')}</span>` : html`<span class="badge tone-bad">${t('handlers.notConsuming')}</span>`}</td>
        <td class="num" data-handled>${h.handled ?? '—'}</td>
        <td class="num" data-lag>${h.lag ?? '—'}</td>
        <td class="num">${(h.failed || 0) + (h.invalid || 0)}</td>
        <td data-error>${h.lastError ? html`${h.lastError} <span class="muted">(${when(h.lastErrorTime)})</span>` : '—'}</td></tr>`)}
        ${!rows.length && !data.loading ? html`<tr><td colspan="7" class="empty">${t('handlers.none')}</td></tr>` : null}
      </tbody>
    </table>
  </section>`;
}

/** A node by its id, or that there is none (no leader). */
const nodeName = (id) => (id ? t('cluster.nodeId', { id }) : t('cluster.none'));

export function Cluster() {
  const status = useLoad(() => get('/cluster/status?consistent=true').catch(() => get('/cluster/status')), [], 3000);
  const local = useLoad(() => get('/cluster/status'), [], 3000);
  const s = status.data;
  const replication = s?.replication || {};
  return html`<section>
    <h1>${t('nav.cluster')}</h1>
    <${Failure} error=${status.error} />
    ${s ? html`<dl class="facts wide">
      <dt>${t('cluster.leader')}</dt><dd>${nodeName(s.leader)} ${s.leaderAddress ? html`<code>${s.leaderAddress}</code>` : null}</dd>
      <dt>${t('cluster.term')}</dt><dd>${s.term}</dd>
      <dt>${t('cluster.log')}</dt><dd>${t('cluster.logIndexes', { last: s.lastLogIndex, committed: s.commitIndex, applied: s.appliedIndex })}</dd>
      <dt>${t('cluster.snapshot')}</dt><dd>${t('cluster.snapshotIndexes', { index: s.snapshotIndex ?? t('cluster.none'), purged: s.purgedIndex ?? t('cluster.none') })}</dd>
      <dt>${t('cluster.thisNode')}</dt><dd>${local.data ? t('cluster.local', { id: local.data.nodeId, state: roleWord(local.data.state), applied: local.data.appliedIndex }) : '…'}</dd>
    </dl>
    <table class="grid">
      ${headers(t('cluster.node'), t('cluster.address'), t('cluster.role'), t('cluster.matched'), t('cluster.lag'))}
      <tbody>${(s.members || []).map((m) => {
        const r = replication[m.id];
        const leader = m.id === s.leader;
        return html`<tr key=${m.id} data-node=${m.id}><td>${m.id}</td><td><code>${m.address}</code></td>
          <td>${t(leader ? 'cluster.role.leader' : m.voter ? 'cluster.role.follower' : 'cluster.role.learner')}</td>
          <td>${leader ? s.lastLogIndex : r ? r.matchedIndex : '—'}</td>
          <td>${leader ? '—' : r ? t('cluster.entries', { n: number(r.lag) }) : t('cluster.unknown')}</td></tr>`;
      })}</tbody>
    </table>
    <${Partitions} status=${s} />` : html`<p>${t('common.loading')}</p>`}
  </section>`;
}

// Which node leads each partition (a Raft group of its own) and which should; nothing for a
// cluster that is one group.
function Partitions({ status }) {
  const groups = (status.groups || []).filter((g) => g.group > 0);
  if (!groups.length) return null;
  const led = {};
  for (const g of groups) if (g.leader) led[g.leader] = (led[g.leader] || 0) + 1;
  return html`<h2>${t('cluster.partitions')}</h2>
    <p>${t('cluster.partitionsIntro', { n: groups.length, leader: nodeName(status.leader) })}
      ${Object.entries(led).map(([node, n]) => t('cluster.leads', { id: node, n })).join(' ')}</p>
    <table class="grid">
      ${headers(t('cluster.partition'), t('cluster.leader'), t('cluster.preferred'), t('cluster.term'))}
      <tbody>${groups.map((g) => html`<tr key=${g.group} data-partition=${g.group}>
        <td>${g.group}</td><td>${nodeName(g.leader)}</td>
        <td>${g.preferredLeader ? nodeName(g.preferredLeader) : '—'}${g.leader && g.preferredLeader && g.leader !== g.preferredLeader ? ` ${t('cluster.moving')}` : ''}</td>
        <td>${g.term}</td></tr>`)}</tbody>
    </table>`;
}
