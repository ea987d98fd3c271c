// The workflow diagram: a layout of Conductor's nested task lists (forks side by side, switch
// cases side by side with their labels, loops boxed with their iteration count), drawn as SVG.
// Conductor's DSL is a tree of sequences, so the layout follows the tree instead of running a
// general graph layout: it is linear in the number of tasks (a thousand-task workflow lays out in
// milliseconds) and every node keeps the JSON path of its task, which the visual editor edits.
import { useMemo, useState } from './vendor/hooks.mjs';
import { html, statusWord, tone } from './lib.js';
import { number, t } from './i18n.js';

const W = 196;
const H = 46;
const GAP = 34;
const SIDE = 26;
const PAD = 14;
const MARGIN = 24;
const DEFAULT = '\u0000default';

export const pathKey = (path) => path.join('/');

function fragment(w, h) { return { w, h, nodes: [], edges: [], boxes: [], labels: [] }; }

function add(into, part, dx, dy) {
  for (const n of part.nodes) into.nodes.push({ ...n, x: n.x + dx, y: n.y + dy });
  for (const e of part.edges) into.edges.push({ ...e, points: e.points.map(([x, y]) => [x + dx, y + dy]) });
  for (const b of part.boxes) into.boxes.push({ ...b, x: b.x + dx, y: b.y + dy });
  for (const l of part.labels) into.labels.push({ ...l, x: l.x + dx, y: l.y + dy });
}

function leaf(task, path, kind = 'task') {
  const f = fragment(W, H);
  f.nodes.push({ key: pathKey(path), path, task, kind, x: 0, y: 0, w: W, h: H });
  return f;
}

function sequence(tasks, base, ctx) {
  if (!tasks || !tasks.length) {
    if (!ctx.editable) return fragment(40, 0);
    const f = fragment(W * 0.7, 28);
    f.nodes.push({ key: pathKey([...base, 0]), path: [...base, 0], kind: 'empty', x: 0, y: 0, w: W * 0.7, h: 28 });
    return f;
  }
  const parts = tasks.map((t, i) => one(t, [...base, i], ctx));
  const w = Math.max(...parts.map((p) => p.w));
  const out = fragment(w, 0);
  let y = 0;
  parts.forEach((p, i) => {
    if (i > 0) out.edges.push({ points: [[w / 2, y - GAP], [w / 2, y]] });
    add(out, p, (w - p.w) / 2, y);
    y += p.h + GAP;
  });
  out.h = y - GAP;
  return out;
}

function branching(task, path, branches, ctx) {
  const parts = branches.map((b) => ({ ...b, f: sequence(b.tasks, b.base, ctx) }));
  const inner = parts.reduce((s, p) => s + p.f.w, 0) + SIDE * Math.max(0, parts.length - 1);
  const w = Math.max(W, inner);
  const deepest = Math.max(0, ...parts.map((p) => p.f.h));
  const out = fragment(w, 0);
  out.nodes.push({ key: pathKey(path), path, task, kind: 'task', x: (w - W) / 2, y: 0, w: W, h: H });
  const top = H + GAP;
  const exit = top + deepest + GAP / 2;
  let x = (w - inner) / 2;
  const owner = pathKey(path);
  for (const p of parts) {
    const cx = x + p.f.w / 2;
    out.edges.push({ points: [[w / 2, H], [cx, H + GAP / 2], [cx, top]], owner, branch: p.key });
    if (p.label !== undefined) out.labels.push({ x: cx + 7, y: top - 4, text: p.label, owner, branch: p.key, room: Math.max(W / 2, p.f.w / 2) });
    add(out, p.f, x, top);
    out.edges.push({ points: [[cx, top + p.f.h], [cx, exit - GAP / 4], [w / 2, exit]], owner, branch: p.key, arrow: false });
    x += p.f.w + SIDE;
  }
  out.h = parts.length ? exit : H;
  return out;
}

function loop(task, path, ctx) {
  const body = sequence(task.loopOver, [...path, 'loopOver'], ctx);
  const inner = Math.max(W, body.w);
  const w = inner + 2 * PAD + 18;
  const out = fragment(w, 0);
  const cx = PAD + inner / 2;
  out.nodes.push({ key: pathKey(path), path, task, kind: 'task', x: cx - W / 2, y: PAD, w: W, h: H });
  const bodyTop = PAD + H + GAP;
  out.edges.push({ points: [[cx, PAD + H], [cx, bodyTop]] });
  add(out, body, PAD + (inner - body.w) / 2, bodyTop);
  const bottom = bodyTop + body.h;
  const right = w - 10;
  out.edges.push({ points: [[cx, bottom], [cx, bottom + 10], [right, bottom + 10], [right, PAD + H / 2], [cx + W / 2, PAD + H / 2]], back: true });
  out.h = bottom + 10 + PAD;
  out.boxes.push({ key: pathKey(path), x: 0, y: 0, w, h: out.h, ref: task.taskReferenceName });
  return out;
}

function one(task, path, ctx) {
  const type = task?.type || 'SIMPLE';
  if (type === 'FORK_JOIN') {
    return branching(task, path, (task.forkTasks || []).map((b, i) => ({ key: String(i), tasks: b, base: [...path, 'forkTasks', i] })), ctx);
  }
  if (type === 'FORK_JOIN_DYNAMIC' && ctx.dynamic?.[task.taskReferenceName]) {
    const forked = ctx.dynamic[task.taskReferenceName];
    return branching(task, path, forked.map((t, i) => ({ key: String(i), tasks: [t], base: [...path, 'dynamic', i] })), { ...ctx, editable: false });
  }
  if (type === 'SWITCH' || type === 'DECISION') {
    const cases = Object.entries(task.decisionCases || {}).map(([k, b]) => ({ key: k, label: k, tasks: b, base: [...path, 'decisionCases', k] }));
    cases.push({ key: DEFAULT, label: '', tasks: task.defaultCase || [], base: [...path, 'defaultCase'] });
    return branching(task, path, cases, ctx);
  }
  if (type === 'DO_WHILE') return loop(task, path, ctx);
  return leaf(task, path);
}

/** Lays out a definition's tasks between a start and an end node. */
export function layout(def, { editable = false, dynamic } = {}) {
  const body = sequence(def?.tasks || [], ['tasks'], { editable, dynamic });
  const w = Math.max(body.w, 120);
  const out = fragment(w, 0);
  out.nodes.push({ key: 'start', kind: 'start', x: w / 2 - 30, y: 0, w: 60, h: 26 });
  add(out, body, (w - body.w) / 2, 26 + GAP);
  const end = 26 + GAP + body.h + GAP;
  out.edges.push({ points: [[w / 2, 26], [w / 2, 26 + GAP]] });
  out.edges.push({ points: [[w / 2, 26 + GAP + body.h], [w / 2, end]] });
  out.nodes.push({ key: 'end', kind: 'end', x: w / 2 - 30, y: end, w: 60, h: 26 });
  out.h = end + 26;
  return out;
}

const strip = (ref) => ref.replace(/__\d+$/, '');

/**
 * What ran, by reference name: the latest attempt of each task (loop iterations `ref__N` are
 * folded onto `ref`), its attempts, and which case each switch took.
 */
export function runOverlay(tasks) {
  const byRef = new Map();
  for (const t of [...(tasks || [])].sort((a, b) => a.seq - b.seq)) {
    const ref = byRef.has(t.referenceTaskName) || !/__\d+$/.test(t.referenceTaskName) ? t.referenceTaskName : strip(t.referenceTaskName);
    const seen = byRef.get(ref);
    byRef.set(ref, { task: t, attempts: (seen?.attempts || 0) + 1 });
  }
  const dynamic = {};
  for (const { task } of byRef.values()) {
    if (task.taskType === 'FORK_JOIN_DYNAMIC' || task.taskType === 'FORK') {
      const defs = task.inputData?.forkedTaskDefs;
      if (Array.isArray(defs) && defs.length) dynamic[task.referenceTaskName] = defs;
    }
  }
  return { byRef, dynamic };
}

function takenCase(run, task) {
  const result = run?.task?.outputData?.evaluationResult;
  if (!run || !Array.isArray(result)) return undefined;
  const value = result.map(String)[0];
  return Object.hasOwn(task.decisionCases || {}, value) ? value : DEFAULT;
}

let measuring;
let family;
/**
 * How wide `text` is drawn at `size` px in the page's font, measured on a canvas: a Chinese
 * character takes about twice the width of a Latin letter, an emoji more.
 */
function textWidth(text, size, weight = 'normal') {
  if (!measuring) {
    measuring = document.createElement('canvas').getContext('2d');
    family = getComputedStyle(document.documentElement).fontFamily;
  }
  measuring.font = `${weight} ${size}px ${family}`;
  return measuring.measureText(text).width;
}

/**
 * `text` cut to fit `width` px at `size` px, ending in `…` when cut; whole code points only, so an
 * emoji is never split in half.
 */
function fit(text, width, size) {
  const whole = text || '';
  if (textWidth(whole, size) <= width) return whole;
  const chars = Array.from(whole);
  let lo = 0;
  let hi = chars.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${chars.slice(0, mid).join('')}…`, size) <= width) lo = mid; else hi = mid - 1;
  }
  return `${chars.slice(0, lo).join('')}…`;
}

/** The node's text sizes (as in style.css) and its inner margin. */
const REF_SIZE = 12.5;
const SMALL = 11;
const INSET = 10;

function Node({ n, run, selected, onSelect }) {
  if (n.kind === 'start' || n.kind === 'end') {
    return html`<g class="terminal" transform=${`translate(${n.x},${n.y})`}>
      <rect width=${n.w} height=${n.h} rx="13" /><text x=${n.w / 2} y="17" text-anchor="middle">${fit(n.kind === 'start' ? t('diagram.start') : t('diagram.end'), n.w - 8, 12)}</text></g>`;
  }
  if (n.kind === 'empty') {
    return html`<g class=${`node empty${selected ? ' selected' : ''}`} transform=${`translate(${n.x},${n.y})`} tabindex="0" role="button"
      data-path=${n.key} aria-label=${t('diagram.emptyLabel')} onClick=${() => onSelect?.(n)}
      onKeyDown=${(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect?.(n); } }}>
      <rect width=${n.w} height=${n.h} rx="6" /><text x=${n.w / 2} y="18" text-anchor="middle">${fit(t('diagram.empty'), n.w - 8, SMALL)}</text></g>`;
  }
  const task = n.task || {};
  const type = task.type || 'SIMPLE';
  const status = run?.task?.status;
  const cls = `node kind-${type.toLowerCase()} ${status ? `tone-${tone(status)}` : run === null ? 'notrun' : ''}${selected ? ' selected' : ''}`;
  const iteration = type === 'DO_WHILE' && run?.task ? run.task.iteration : undefined;
  const child = type === 'SUB_WORKFLOW' ? run?.task?.subWorkflowId || run?.task?.outputData?.subWorkflowId : undefined;
  const activate = () => onSelect?.(n);
  const state = status ? statusWord(status) : run === null ? t('diagram.notRun') : undefined;
  const label = state ? t('diagram.labelWithState', { ref: task.taskReferenceName, type, state }) : t('diagram.label', { ref: task.taskReferenceName, type });
  // The corner notes first: the labels take the width they leave.
  const corner = iteration ? t('diagram.loop', { n: iteration }) : run?.attempts > 1 ? `×${run.attempts}` : '';
  const childText = child ? t('diagram.child') : '';
  const room = (note) => n.w - 2 * INSET - (note ? textWidth(note, SMALL, 600) + 6 : 0);
  return html`<g class=${cls} transform=${`translate(${n.x},${n.y})`} tabindex="0" role="button" aria-label=${label}
      data-ref=${task.taskReferenceName} data-type=${task.type} data-status=${status || (run === null ? 'NOT_RUN' : undefined)} data-path=${n.key}
      onClick=${activate} onKeyDown=${(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); activate(); } }}>
    <title>${label}${task.name && task.name !== task.taskReferenceName ? `\n${t('diagram.taskName', { name: task.name })}` : ''}</title>
    <rect width=${n.w} height=${n.h} rx=${type === 'SWITCH' || type === 'DECISION' ? 16 : 6} />
    <text class="ref" x=${INSET} y="19">${fit(task.taskReferenceName, room(corner), REF_SIZE)}</text>
    <text class="type" x=${INSET} y="36">${fit(status ? `${type} · ${statusWord(status)}` : type, room(childText), SMALL)}</text>
    ${corner ? html`<text class="attempts" x=${n.w - 8} y="19" text-anchor="end" data-iteration=${iteration}>${corner}</text>` : null}
    ${child ? html`<a href=${`#/execution/${encodeURIComponent(child)}`} class="child" onClick=${(e) => e.stopPropagation()}>
      <text x=${n.w - 8} y="36" text-anchor="end">${childText}</text></a>` : null}
  </g>`;
}

/**
 * The diagram. `def`: a workflow definition; `tasks`: an execution's tasks (statuses drawn, the
 * taken switch cases highlighted); `selected`: a node key; `onSelect(node)`; `editable` draws
 * empty branches as places to add tasks.
 */
export function Diagram({ def, tasks, selected, onSelect, editable = false }) {
  const [scale, setScale] = useState(1);
  const run = useMemo(() => (tasks ? runOverlay(tasks) : undefined), [tasks]);
  const dynamicKey = run ? Object.keys(run.dynamic).join(',') : '';
  const g = useMemo(() => layout(def, { editable, dynamic: run?.dynamic }), [def, editable, dynamicKey]);
  const taken = new Map();
  if (run) {
    for (const n of g.nodes) {
      const t = n.task;
      if (t && (t.type === 'SWITCH' || t.type === 'DECISION')) taken.set(n.key, takenCase(run.byRef.get(t.taskReferenceName), t));
    }
  }
  const edgeClass = (e) => {
    if (!e.owner || !taken.has(e.owner)) return 'edge';
    const chosen = taken.get(e.owner);
    if (chosen === undefined) return 'edge';
    return chosen === e.branch ? 'edge taken' : 'edge untaken';
  };
  const runOf = (n) => (!run || !n.task ? undefined : run.byRef.get(n.task.taskReferenceName) || null);
  const width = g.w + 2 * MARGIN;
  const height = g.h + 2 * MARGIN;
  return html`<div class="diagram">
    <div class="zoom" role="group" aria-label=${t('diagram.zoom')}>
      <button type="button" onClick=${() => setScale(Math.max(0.25, scale / 1.25))} aria-label=${t('diagram.zoomOut')}>−</button>
      <button type="button" onClick=${() => setScale(1)} aria-label=${t('diagram.zoomReset')}>${number(scale, { style: 'percent' })}</button>
      <button type="button" onClick=${() => setScale(Math.min(3, scale * 1.25))} aria-label=${t('diagram.zoomIn')}>+</button>
    </div>
    <div class="canvas">
      <svg role="group" aria-label=${t('diagram.label.svg')} width=${width * scale} height=${height * scale} viewBox=${`0 0 ${width} ${height}`}>
        <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" /></marker></defs>
        <g transform=${`translate(${MARGIN},${MARGIN})`}>
          ${g.boxes.map((b) => html`<g class="loop-box" data-loop=${b.ref}><rect x=${b.x} y=${b.y} width=${b.w} height=${b.h} rx="10" /></g>`)}
          ${g.edges.map((e) => html`<polyline class=${`${edgeClass(e)}${e.back ? ' back' : ''}`} data-case=${e.branch} data-owner=${e.owner}
            data-taken=${e.owner && taken.has(e.owner) ? String(taken.get(e.owner) === e.branch) : undefined}
            points=${e.points.map((p) => p.join(',')).join(' ')} marker-end=${e.arrow === false ? undefined : 'url(#arrow)'} />`)}
          ${g.labels.map((l) => html`<text class=${`case-label ${taken.has(l.owner) && taken.get(l.owner) === l.branch ? 'taken' : ''}`} x=${l.x} y=${l.y}>${fit(l.branch === DEFAULT ? t('diagram.default') : l.text, l.room, 11.5)}</text>`)}
          ${g.nodes.map((n) => html`<${Node} key=${n.key} n=${n} run=${runOf(n)} selected=${selected === n.key} onSelect=${onSelect} />`)}
        </g>
      </svg>
    </div>
  </div>`;
}
