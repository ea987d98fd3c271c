// Browser tests of the web UI in a real headless Chromium (Debian's `chromium`), driven by
// playwright-core. Run by tests/tests/ui.rs, which starts the node and seeds it:
//
//   node ui.mjs <scenario> <base url> <artifacts dir> [scenario arguments...]
//
// Scenarios:
//   tour <forkSwitchId> <runningId> <bigDefName> <loopSubId>  the list (thousands of executions),
//       an execution's diagram with statuses and the taken switch case, a loop's iterations and a
//       sub-workflow's link, terminate, retry, skip, pause and resume from the UI, the definition
//       editor both ways, a thousand-task diagram, the operations views, shared URLs and contrast;
//   cluster <nodes> <role> [partitions]  the cluster view (as the leader sees it) from a node in
//       that role, with who leads each partition;
//   signin <keyId> <secret>  with authentication on: sign-in, then the list;
//   unicode <workflowId> <name> <taskRef> <text>  Chinese, accented and emoji text: found by free
//       text, listed under its name, drawn in the diagram and shown in the task's output;
//   zh <workflowId> <name> <doneRef> <nextRef> <longRef> <customer>  the UI in Simplified Chinese
//       (a zh-CN browser): labels, statuses, dates and durations in Chinese, no English left,
//       searching in Chinese, Chinese task labels in the diagram and the editor, long ones cut to
//       fit their node; then the language switch to English, remembered after a reload.
//
// Every scenario but zh runs in an en-US browser.
//
// Prints one line per check; any failed check exits non-zero with the reason and a screenshot.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [scenario, base, artifacts, ...args] = process.argv.slice(2);
const executablePath = process.env.OVERTURE_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`${executablePath} not found: install Debian's chromium (apt-get install chromium), or set OVERTURE_CHROMIUM`);
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
// The browser's languages and time zone: Chinese in Shanghai for zh, else English (which the
// other scenarios' texts are).
const chinese = scenario === 'zh';
const context = await browser.newContext({
  viewport: { width: 1400, height: 900 }, locale: chinese ? 'zh-CN' : 'en-US', timezoneId: chinese ? 'Asia/Shanghai' : undefined,
});
const page = await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
page.setDefaultTimeout(15000);

const shot = async (name, fullPage = true) => {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage });
  console.log(`screenshot ${path}`);
};
const ok = (what) => console.log(`ok - ${what}`);
const open = async (hash) => { await page.goto(`${base}/${hash}`); };
/** Text whose contrast with its background is under WCAG AA (4.5:1, or 3:1 for large text). */
async function contrast(where) {
  const bad = await page.evaluate(() => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const channel = (v) => { const x = v / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
    const luminance = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0.5) return c;
      }
      return { r: 255, g: 255, b: 255 };
    };
    const found = [];
    for (const el of document.querySelectorAll('main *, header *')) {
      if (el.closest('svg') || !el.getClientRects().length || el.closest('button:disabled')) continue;
      if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
      const style = getComputedStyle(el);
      const fg = parse(style.color);
      if (!fg) continue;
      const [hi, lo] = [luminance(fg), luminance(background(el))].sort((x, y) => y - x);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) found.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return found;
  });
  assert.deepEqual(bad, [], `text under AA contrast on ${where}`);
}

const statusOf = (ref) => page.locator(`svg g.node[data-ref="${ref}"]`).getAttribute('data-status');

async function tour(forkSwitchId, runningId, bigDef, loopSubId) {
  // The list: both seeded workflows, counts by status, a status filter in the URL.
  const listed = Date.now();
  await open('#/executions');
  await page.locator(`tr[data-workflow-id="${forkSwitchId}"]`).waitFor();
  console.log(`info - the first page of the list showed in ${Date.now() - listed} ms (page load included)`);
  await page.locator(`tr[data-workflow-id="${runningId}"]`).waitFor();
  // Counts are written as the language writes numbers: 2,040.
  await page.waitForFunction(() => Number(document.querySelector('[data-count-status="RUNNING"] strong')?.textContent.replace(/\D/g, '')) >= 2);
  const caption = await page.locator('table.executions caption').innerText();
  assert.ok(Number(caption.replace(/\D/g, '')) >= 2000, caption);
  assert.equal(await page.locator('table.executions tbody tr').count(), 25, 'one page of 25 rows');
  ok(`the list shows the executions and counts by status (${caption})`);
  await contrast('the executions list');
  await shot('executions');
  await page.getByRole('button', { name: 'Next →' }).click();
  await page.waitForFunction(() => location.hash.includes('page=2'));
  await page.getByText(/^Page 2 of \d+$/).waitFor();
  await page.goBack();
  await page.getByText(/^Page 1 of \d+$/).waitFor();
  ok('paging is in the URL, and Back returns');
  await page.locator('input[name="type"]').fill('ui_fork_switch');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForFunction(() => document.querySelector('table.executions caption')?.textContent.startsWith('2 matching'));
  ok('searching by workflow type');
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.waitForFunction(() => !location.hash.includes('type='));
  await page.locator('[data-count-status="COMPLETED"]').click();
  await page.waitForFunction(() => location.hash.includes('status=COMPLETED'));
  await page.locator(`tr[data-workflow-id="${forkSwitchId}"]`).waitFor({ state: 'detached' });
  ok('filtering by status changes the URL and the rows');
  await page.locator('[data-count-status="COMPLETED"]').click();
  await page.locator(`tr[data-workflow-id="${forkSwitchId}"]`).waitFor();

  // The execution: diagram nodes with their statuses; the taken switch case highlighted.
  await page.locator(`tr[data-workflow-id="${forkSwitchId}"] a`).click();
  await page.locator('svg g.node[data-ref="sx"]').waitFor();
  const expected = { a: 'COMPLETED', fork: 'COMPLETED', b1: 'COMPLETED', b2: 'COMPLETED', join: 'COMPLETED', decide: 'COMPLETED', sx: 'SCHEDULED', sd: 'NOT_RUN', after: 'NOT_RUN' };
  for (const [ref, status] of Object.entries(expected)) assert.equal(await statusOf(ref), status, `node ${ref}`);
  ok(`diagram statuses: ${Object.entries(expected).map(([r, s]) => `${r}=${s}`).join(' ')}`);
  assert.equal(await page.locator('polyline[data-case="x"][data-taken="true"]').count(), 2, 'the x case is drawn taken');
  assert.ok(await page.locator('polyline[data-taken="false"]').count() >= 2, 'the default case is drawn not taken');
  ok('the switch shows the case it took');
  await shot('execution-fork-switch');

  // Task detail from the diagram (by keyboard), its URL shared, and the timeline.
  await page.locator('svg g.node[data-ref="b1"]').focus();
  await page.keyboard.press('Enter');
  await page.locator('[data-task-panel="b1"]').waitFor();
  assert.match(page.url(), /task=b1/);
  assert.match(await page.locator('[data-task-panel="b1"]').innerText(), /worker-ui-test/);
  ok('Enter on a node opens its task, with the worker id, in a shareable URL');
  await page.locator('#tab-timeline').click();
  await page.locator('.gantt-row[data-task-id]').first().waitFor();
  assert.equal(await page.locator('.gantt-row[data-task-id]').count(), 7, 'one timeline row per task attempt');
  ok('the timeline has a row per task attempt');
  await page.locator('#tab-events').click();
  await page.locator('table.events tbody tr').first().waitFor();
  assert.match(await page.locator('table.events').innerText(), /WorkflowStarted/);
  ok('the event history is shown');

  // A shared URL opens the same view: tab and selected task included.
  const shared = await context.newPage();
  await shared.goto(`${base}/#/execution/${forkSwitchId}?tab=timeline&task=b1`);
  await shared.locator('[data-task-panel="b1"]').waitFor();
  assert.equal(await shared.locator('#tab-timeline').getAttribute('aria-selected'), 'true');
  await shared.close();
  ok('a shared URL opens the same tab and task');
  await contrast('an execution');

  // A loop shows its iterations, a sub-workflow links to its child.
  await open(`#/execution/${loopSubId}`);
  await page.locator('svg g.node[data-ref="loop"] [data-iteration]').waitFor();
  assert.equal(await page.locator('svg g.node[data-ref="loop"] [data-iteration]').getAttribute('data-iteration'), '2');
  assert.equal(await statusOf('step'), 'COMPLETED');
  ok('the loop shows its two iterations');
  await page.locator('svg g.node[data-ref="child"] a.child').click();
  await page.waitForFunction((id) => !location.hash.includes(id), loopSubId);
  await page.locator('h1').getByText('ui_child').waitFor();
  await page.locator('svg g.node[data-ref="child_step"][data-status="COMPLETED"]').waitFor();
  ok('the sub-workflow node opens the child execution');
  await page.goBack();
  await page.locator('.execution[data-workflow-status="COMPLETED"] svg g.node[data-ref="child"]').waitFor();
  await page.locator('svg g.node[data-ref="child"] rect').click({ position: { x: 20, y: 10 } });
  await page.getByRole('button', { name: 'Rerun from this task' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Rerun' }).click();
  await page.locator('dialog.confirm[open]').waitFor({ state: 'detached' });
  await page.locator('.execution[data-workflow-status="COMPLETED"]').waitFor();
  await page.getByRole('button', { name: 'Restart' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Restart' }).click();
  await page.locator('dialog.confirm[open]').waitFor({ state: 'detached' });
  await page.locator('.execution[data-workflow-status="COMPLETED"]').waitFor();
  ok('rerun from a task and restart, each confirmed');

  // Terminate a running workflow from the UI, confirmed in a dialog; the page shows the change.
  await open(`#/execution/${runningId}`);
  await page.locator('.execution[data-workflow-status="RUNNING"]').waitFor();
  await page.getByRole('button', { name: 'Terminate' }).click();
  const dialog = page.locator('dialog.confirm[open]');
  await dialog.waitFor();
  await dialog.locator('input[name="reason"]').fill('stopped from the UI test');
  await shot('terminate-confirm', false);
  await dialog.getByRole('button', { name: 'Terminate' }).click();
  await page.locator('.execution[data-workflow-status="TERMINATED"]').waitFor();
  await page.getByText('stopped from the UI test').waitFor();
  ok('terminate, confirmed, turns the page TERMINATED');
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Retry' }).click();
  await page.locator('.execution[data-workflow-status="RUNNING"]').waitFor();
  ok('retry, confirmed, runs it again');
  await page.waitForFunction(() => document.querySelector('svg g.node[data-ref="a"]')?.dataset.status === 'SCHEDULED');
  await page.locator('svg g.node[data-ref="after"]').click();
  await page.getByRole('button', { name: 'Skip this task' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Skip' }).click();
  await page.waitForFunction(() => document.querySelector('svg g.node[data-ref="after"]')?.dataset.status === 'SKIPPED');
  ok('a task not reached yet is skipped from the diagram');
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Pause' }).click();
  await page.locator('.execution[data-workflow-status="PAUSED"]').waitFor();
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Resume' }).click();
  await page.locator('.execution[data-workflow-status="RUNNING"]').waitFor();
  ok('pause and resume');

  // The definitions, filtered as one types; then one definition's diagram, the visual editor and
  // the JSON kept in sync both ways.
  await open('#/definitions');
  await page.locator('table.grid tbody tr').nth(3).waitFor();
  await page.locator('label.filter input').fill('fork_sw');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr').length === 1);
  await page.locator('label.filter input').fill('fork_swi');
  assert.equal(await page.locator('label.filter input').inputValue(), 'fork_swi', 'the filter keeps its focus and text');
  ok('the definitions filter as one types');
  await page.getByRole('link', { name: 'ui_fork_switch' }).click();
  await page.waitForFunction(() => location.hash.includes('version=1'));
  await page.locator('svg g.node[data-ref="decide"]').waitFor();
  assert.equal(await page.locator('svg g.node[data-ref="decide"]').getAttribute('data-status'), null, 'no statuses on a definition');
  await shot('definition');
  await page.locator('#tab-edit').click();
  const json = page.locator('#definition-json');
  await json.waitFor();
  await page.locator('svg g.node[data-ref="a"]').click();
  await page.locator('[data-action="add-after"]').click();
  await page.locator('svg g.node[data-ref="simple_1"]').waitFor();
  assert.match(await json.inputValue(), /"taskReferenceName": "simple_1"/);
  ok('adding a task on the diagram writes it into the JSON');
  // The JSON before the move: the edits below start from it.
  const text = await json.inputValue();
  await page.locator('svg g.node[data-ref="b2"]').click();
  await page.getByRole('button', { name: 'Move to…' }).click();
  await page.locator('svg g.node[data-ref="b1"]').click();
  const moved = JSON.parse(await json.inputValue());
  const fork = moved.tasks.find((t) => t.taskReferenceName === 'fork');
  assert.deepEqual(fork.forkTasks.map((b) => b.map((t) => t.taskReferenceName)), [['b1', 'b2'], []]);
  assert.deepEqual(moved.tasks.find((t) => t.type === 'JOIN').joinOn, ['b2'], 'the join follows the branches');
  ok('moving a task into another branch updates the fork and its join');
  await page.locator('svg g.node[data-ref="fork"]').click();
  await page.getByRole('button', { name: 'Add branch' }).click();
  await page.locator('svg g.node[data-ref="decide"]').click();
  await page.locator('.toolbar form.inline input').fill('y');
  await page.getByRole('button', { name: 'Add case' }).click();
  const grown = JSON.parse(await json.inputValue());
  assert.equal(grown.tasks.find((t) => t.taskReferenceName === 'fork').forkTasks.length, 3, 'a third branch');
  assert.deepEqual(Object.keys(grown.tasks.find((t) => t.taskReferenceName === 'decide').decisionCases), ['x', 'y']);
  await page.locator('polyline[data-case="y"]').first().waitFor({ state: 'attached' });
  ok('a fork branch and a switch case added on the diagram');
  await json.fill(text.replace('"name": "ui_fork_switch",', '"name": "ui_fork_switch"'));
  const error = page.locator('[data-json-error]');
  await error.waitFor();
  assert.match(await error.innerText(), /Line \d+, column \d+/);
  assert.ok(await page.getByRole('button', { name: 'Save definition' }).isDisabled(), 'no saving invalid JSON');
  ok('invalid JSON is reported inline with its line and column, and cannot be saved');
  await contrast('the editor with an error');
  await shot('editor-json-error', false);
  await json.fill(text.replace('"taskReferenceName": "sd"', '"taskReferenceName": "sd_renamed"'));
  await page.locator('svg g.node[data-ref="sd_renamed"]').waitFor();
  ok('editing the JSON redraws the diagram');
  await json.fill(text.replace('"taskReferenceName": "sd"', '"taskReferenceName": "a"'));
  await page.getByText('is used twice').waitFor();
  ok('a duplicate reference name is flagged before saving');
  await json.fill(text.replace('"taskReferenceName": "sd"', '"taskReferenceName": "sd_renamed"'));
  await page.locator('svg g.node[data-ref="decide"]').click();
  await page.getByRole('button', { name: 'Add case' }).waitFor();
  await shot('editor');
  await page.getByRole('button', { name: 'Save definition' }).click();
  await page.waitForFunction(() => !location.hash.includes('tab=edit'));
  await page.locator('svg g.node[data-ref="sd_renamed"]').waitFor();
  ok('saving stores the edited definition');

  // Start a workflow from its definition's input form.
  await page.locator('#tab-start').click();
  await page.locator('input[name="input-k"]').fill('y');
  await page.getByRole('button', { name: /^Start ui_fork_switch/ }).click();
  await page.locator('.execution[data-workflow-status="RUNNING"]').waitFor();
  assert.match(page.url(), /#\/execution\//);
  ok('the start form starts a workflow and opens it');

  // A thousand-task workflow: every node drawn.
  const started = Date.now();
  await open(`#/definitions/${bigDef}`);
  await page.waitForFunction(() => document.querySelectorAll('svg g.node').length >= 1000);
  console.log(`info - a 1,000-task diagram rendered in ${Date.now() - started} ms (page load included)`);
  ok('a thousand-task definition is drawn');

  // Operations.
  await open('#/queues');
  await page.locator('tr[data-queue="ui_task"] [data-size]').waitFor();
  assert.ok(Number(await page.locator('tr[data-queue="ui_task"] [data-size]').innerText()) >= 1);
  ok('queues show depth per task type');
  await shot('queues');
  await open('#/events');
  await page.locator('tr[data-handler="ui_events"]').getByText('CONSUMING').waitFor();
  assert.match(await page.locator('tr[data-handler="ui_events"]').innerText(), /conductor:ui_fork_switch:notify/);
  ok('event handlers show their queue and whether it is consumed');
  await open('#/taskdefs');
  await page.getByRole('button', { name: 'New task definition' }).click();
  const taskDef = page.locator('#taskdef-json');
  await taskDef.fill((await taskDef.inputValue()).replace('"new_task"', '"ui_made_here"'));
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('link', { name: 'ui_made_here' }).waitFor();
  ok('a task definition created from its JSON');
  await open('#/schedules');
  await page.locator('tr[data-schedule="ui_nightly"]').waitFor();
  await page.locator('tr[data-schedule="ui_nightly"] ul.times li').nth(2).waitFor();
  ok('a schedule shows its next three fire times');
  await page.locator('tr[data-schedule="ui_nightly"]').getByRole('button', { name: 'Pause' }).click();
  await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Pause' }).click();
  await page.locator('tr[data-schedule="ui_nightly"]').getByText('PAUSED').waitFor();
  ok('a schedule is paused from the UI');
  await open('#/cluster');
  await page.locator('tr[data-node="1"]').waitFor();
  assert.match(await page.locator('tr[data-node="1"]').innerText(), /leader/);
  ok('the cluster view names the leader');
  await contrast('the cluster view');
  await shot('cluster');
}

async function cluster(nodes, role, partitions) {
  await open('#/cluster');
  await page.locator('tr[data-node]').nth(Number(nodes) - 1).waitFor();
  const rows = await page.locator('tr[data-node]').allInnerTexts();
  assert.equal(rows.length, Number(nodes), rows.join('\n'));
  assert.equal(rows.filter((r) => /leader/.test(r)).length, 1, rows.join('\n'));
  assert.equal(rows.filter((r) => /\d+ entries/.test(r)).length, Number(nodes) - 1, `a lag per follower: ${rows.join('\n')}`);
  ok(`the cluster view lists ${nodes} nodes, the leader, and each follower's lag`);
  if (partitions) {
    await page.locator('tr[data-partition]').nth(Number(partitions) - 1).waitFor();
    await page.getByText(/Node \d leads \d/).first().waitFor();
    const parts = await page.locator('tr[data-partition]').allInnerTexts();
    assert.equal(parts.length, Number(partitions), parts.join('\n'));
    assert.ok(parts.every((r) => /node \d/.test(r)), `every partition has a leader: ${parts.join('\n')}`);
    ok(`the cluster view lists ${partitions} partitions and who leads each`);
  }
  await page.locator('dd').getByText(`(${role})`).waitFor();
  ok(`served by a node that is a ${role}`);
  await shot('cluster');
}

async function signin(keyId, secret) {
  await open('#/executions');
  await page.waitForFunction(() => location.hash.startsWith('#/signin'));
  await page.locator('input[name="keyId"]').fill(keyId);
  await page.locator('input[name="keySecret"]').fill('not the secret');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Unknown key id or wrong secret').waitFor();
  ok('a wrong secret is refused');
  await page.locator('input[name="keySecret"]').fill(secret);
  await shot('signin', false);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => location.hash.startsWith('#/executions'));
  await page.locator('table.executions caption').getByText(/matching execution/).waitFor();
  ok('signing in with the API key opens the list');
  const failed = problems.filter((p) => !p.includes('401'));
  problems.length = 0;
  problems.push(...failed);
}

async function unicode(workflowId, name, taskRef, text) {
  await open('#/executions');
  await page.locator('input[name="text"]').fill('韩梅梅');
  await page.getByRole('button', { name: 'Search' }).click();
  const row = page.locator(`tr[data-workflow-id="${workflowId}"]`);
  await row.waitFor();
  assert.equal(await page.locator('table.executions tbody tr').count(), 1, 'only the workflow with that text');
  assert.match(await row.innerText(), new RegExp(name));
  ok(`free text in Chinese finds the execution, listed as ${name}`);
  await shot('unicode-executions');
  await row.locator('a').first().click();
  const node = page.locator(`svg g.node[data-ref="${taskRef}"]`);
  await node.waitFor();
  assert.equal(await node.getAttribute('data-status'), 'COMPLETED');
  assert.match(await node.locator('text.ref').textContent(), new RegExp(taskRef));
  ok(`the diagram draws ${taskRef}`);
  await node.click();
  const panel = page.locator(`[data-task-panel="${taskRef}"]`);
  await panel.waitFor();
  await panel.getByText(text).first().waitFor();
  ok(`the task's output shows ${text} unchanged`);
  await shot('unicode-execution');
}

/** A catalogue as this node serves it. */
const catalogue = (language) => page.evaluate(async (l) => (await import(`/ui/locales/${l}.js`)).default, language);

/**
 * Fails if the page shows, in a text node or an aria-label, title or placeholder, an English text
 * of the catalogue where the Chinese one differs: a string that skipped the catalogue.
 */
async function noEnglishLeft(where, en, zh) {
  const english = Object.keys(en).filter((k) => en[k] !== zh[k]).map((k) => en[k].trim());
  const found = await page.evaluate((texts) => {
    const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // A text with {placeholders} matches whatever fills them, if its fixed part has words.
    const patterns = texts.filter((x) => /\{\w+\}/.test(x) && /[A-Za-z]{3}/.test(x.replace(/\{\w+\}/g, '')))
      .map((x) => new RegExp(`^${x.split(/\{\w+\}/).map(escape).join('.+?')}$`));
    const exact = new Set(texts.filter((x) => !/\{\w+\}/.test(x)));
    const english = (x) => exact.has(x) || patterns.some((p) => p.test(x));
    const seen = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = n.textContent.trim();
      if (text && n.parentElement?.closest('noscript') === null && english(text)) seen.push(text);
    }
    for (const el of document.querySelectorAll('[aria-label], [title], [placeholder]')) {
      for (const name of ['aria-label', 'title', 'placeholder']) {
        const value = el.getAttribute(name)?.trim();
        if (value && english(value)) seen.push(`${name}="${value}"`);
      }
    }
    return seen;
  }, english);
  assert.deepEqual(found, [], `English left on ${where} in Chinese`);
  ok(`no English text left on ${where}`);
}

async function zh(workflowId, name, doneRef, nextRef, longRef, customer) {
  await open('#/executions');
  const row = page.locator(`tr[data-workflow-id="${workflowId}"]`);
  await row.waitFor();
  const [en, zhCN] = [await catalogue('en'), await catalogue('zh-CN')];
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  assert.equal(await page.locator('main h1').innerText(), zhCN['executions.title']);
  await page.locator('header nav').getByRole('link', { name: zhCN['nav.definitions'] }).waitFor();
  assert.match(await row.innerText(), new RegExp(name));
  assert.equal(await row.locator('[data-status]').innerText(), `${zhCN['status.RUNNING']} RUNNING`);
  assert.match(await row.locator('td').nth(4).innerText(), /^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/, 'a date and time as zh-CN writes it');
  assert.match(await page.locator('table.executions caption').innerText(), /个匹配的执行/);
  ok(`a zh-CN browser gets the list in Chinese, with ${name} and its status as ${zhCN['status.RUNNING']} RUNNING`);
  await noEnglishLeft('the executions list', en, zhCN);
  await contrast('the executions list in Chinese');
  await shot('zh-executions');

  const search = async (field, text, rows) => {
    await page.getByRole('button', { name: zhCN['executions.clear'] }).click();
    await page.waitForFunction(() => !/[?&](text|type)=/.test(location.hash));
    await page.locator(`input[name="${field}"]`).fill(text);
    await page.getByRole('button', { name: zhCN['executions.search'] }).click();
    await page.waitForFunction((f) => location.hash.includes(`${f}=`), field);
    await row.waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('table.executions tbody tr').length === n, rows);
    for (const text of await page.locator('table.executions tbody tr').allInnerTexts()) assert.match(text, new RegExp(name));
  };
  await page.waitForFunction(() => document.querySelectorAll('table.executions tbody tr').length === 3);
  await search('text', customer, 1);
  ok(`free text in Chinese (${customer}) finds the execution, and only it of three`);
  await search('type', name, 2);
  ok(`the workflow type ${name} finds its two executions, not the third's type`);

  await row.locator('a').first().click();
  const node = (ref) => page.locator(`svg g.node[data-ref="${ref}"]`);
  await node(nextRef).waitFor();
  for (const [ref, status] of [[doneRef, 'COMPLETED'], [nextRef, 'SCHEDULED'], [longRef, 'NOT_RUN']]) {
    assert.equal(await node(ref).getAttribute('data-status'), status, ref);
  }
  for (const ref of [doneRef, nextRef]) assert.equal(await node(ref).locator('text.ref').textContent(), ref, 'a short Chinese label whole');
  assert.equal(await node(doneRef).locator('text.type').textContent(), `SIMPLE · ${zhCN['status.COMPLETED']}`);
  const cut = await node(longRef).evaluate((g) => ({
    text: g.querySelector('text.ref').textContent, drawn: g.querySelector('text.ref').getComputedTextLength(), node: Number(g.querySelector('rect').getAttribute('width')),
  }));
  assert.ok(cut.text.endsWith('…') && longRef.startsWith(cut.text.slice(0, -1)), `the long label is cut: ${cut.text}`);
  assert.ok(cut.drawn <= cut.node - 16, `the cut label fits its node: ${cut.drawn} px drawn in a ${cut.node} px node`);
  assert.ok(Array.from(cut.text).length < 20, `cut by width, not by a count of 26 characters: ${cut.text}`);
  assert.match(await page.locator('.execution dl.facts dd').nth(4).innerText(), /秒|分钟|小时/, 'the duration in Chinese units');
  assert.equal(await page.locator('.execution h1 [data-status]').innerText(), `${zhCN['status.RUNNING']} RUNNING`);
  ok(`the diagram draws ${doneRef} (${zhCN['status.COMPLETED']}), ${nextRef} and ${cut.text} cut to ${Math.round(cut.drawn)} px of a ${cut.node} px node`);
  await noEnglishLeft('an execution', en, zhCN);
  await shot('zh-execution');
  await node(doneRef).click();
  await page.locator(`[data-task-panel="${doneRef}"]`).getByText('worker-ui-test').waitFor();
  await noEnglishLeft("a task's panel", en, zhCN);

  await open(`#/definitions/${encodeURIComponent(name)}?tab=edit`);
  const json = page.locator('#definition-json');
  await json.waitFor();
  for (const ref of [doneRef, nextRef, longRef]) assert.match(await json.inputValue(), new RegExp(`"taskReferenceName": "${ref}"`));
  await node(nextRef).click();
  await page.locator('fieldset.properties legend').getByText(nextRef).waitFor();
  assert.equal(await page.locator('fieldset.properties input[name="taskReferenceName"]').inputValue(), nextRef);
  ok(`the editor's JSON and diagram show ${doneRef}, ${nextRef} and ${longRef}`);
  await noEnglishLeft('the editor', en, zhCN);
  await shot('zh-editor');

  for (const [view, heading] of [['definitions', 'definitions.title'], ['taskdefs', 'nav.taskdefs'], ['schedules', 'nav.schedules'],
    ['queues', 'nav.queues'], ['events', 'nav.events'], ['cluster', 'nav.cluster']]) {
    await open(`#/${view}`);
    await page.locator('main h1').getByText(zhCN[heading], { exact: true }).waitFor();
    await page.locator('main table tbody tr').first().waitFor({ state: 'attached' });
    await noEnglishLeft(`#/${view}`, en, zhCN);
  }

  await page.locator('header [data-locale="en"]').click();
  await page.locator('main h1').getByText(en['nav.cluster'], { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  await page.reload();
  await page.locator('main h1').getByText(en['nav.cluster'], { exact: true }).waitFor();
  assert.equal(await page.locator('header [data-locale="en"]').getAttribute('aria-pressed'), 'true');
  ok('the switch turns the page English, and a reload remembers it over the browser\'s Chinese');
  await page.locator('header [data-locale="zh-CN"]').click();
  await page.locator('main h1').getByText(zhCN['nav.cluster'], { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  ok('and back to Chinese');
}

try {
  if (scenario === 'tour') await tour(...args);
  else if (scenario === 'zh') await zh(...args);
  else if (scenario === 'unicode') await unicode(...args);
  else if (scenario === 'signin') await signin(...args);
  else if (scenario === 'cluster') await cluster(...args);
  else throw new Error(`unknown scenario ${scenario}`);
  assert.deepEqual(problems, [], 'no errors in the page');
  ok('no errors in the page');
} catch (e) {
  console.error(`not ok - ${e.message}`);
  await shot('failure').catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
