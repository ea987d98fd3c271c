// The shell: navigation, sign-in, and the view the URL names.
import { render } from './vendor/preact.mjs';
import { useEffect, useState } from './vendor/hooks.mjs';
import { get, signIn, signOut, token, whenSignInNeeded } from './api.js';
import { Failure, html, roleWord } from './lib.js';
import { LANGUAGES, setLocale, t, useLocale } from './i18n.js';
import { go, href, useRoute } from './router.js';
import { Executions } from './executions.js';
import { Execution } from './execution.js';
import { Definition, Definitions, TaskDefinitions } from './definitions.js';
import { Cluster, EventHandlers, Queues, Schedules } from './ops.js';

const nav = () => [
  ['executions', t('nav.executions')],
  ['definitions', t('nav.definitions')],
  ['taskdefs', t('nav.taskdefs')],
  ['schedules', t('nav.schedules')],
  ['queues', t('nav.queues')],
  ['events', t('nav.events')],
  ['cluster', t('nav.cluster')],
];

function SignIn({ next }) {
  const [keyId, setKeyId] = useState('');
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(undefined);
  const submit = async (e) => {
    e.preventDefault();
    setError(undefined);
    try {
      await signIn(keyId.trim(), secret);
      location.hash = next || '#/executions';
    } catch (err) {
      setError(err.status === 401 ? new Error(t('signin.refused')) : err);
    }
  };
  return html`<section class="signin">
    <h1>${t('signin.title')}</h1>
    <p>${t('signin.intro')}</p>
    <form onSubmit=${submit}>
      <label>${t('signin.keyId')} <input name="keyId" autocomplete="username" required value=${keyId} onInput=${(e) => setKeyId(e.target.value)} /></label>
      <label>${t('signin.secret')} <input name="keySecret" type="password" autocomplete="current-password" required value=${secret} onInput=${(e) => setSecret(e.target.value)} /></label>
      <${Failure} error=${error} />
      <button class="primary" type="submit">${t('signin.submit')}</button>
    </form>
  </section>`;
}

function View({ route }) {
  const [first = 'executions', ...rest] = route.parts;
  const q = route.query;
  switch (first) {
    case 'executions': return html`<${Executions} query=${q} />`;
    case 'execution': return html`<${Execution} id=${rest[0]} query=${q} />`;
    case 'definitions': return rest[0] ? html`<${Definition} name=${rest[0]} query=${q} />` : html`<${Definitions} query=${q} />`;
    case 'new-definition': return html`<${Definition} query=${q} creating=${true} />`;
    case 'taskdefs': return html`<${TaskDefinitions} query=${q} />`;
    case 'schedules': return html`<${Schedules} query=${q} />`;
    case 'queues': return html`<${Queues} />`;
    case 'events': return html`<${EventHandlers} />`;
    case 'cluster': return html`<${Cluster} />`;
    case 'signin': return html`<${SignIn} next=${q.get('next')} />`;
    default: return html`<section><h1>${t('app.notFound')}</h1><p>${t('app.noView', { name: first })} <a href="#/executions">${t('app.seeExecutions')}</a></p></section>`;
  }
}

/** The language switch: each language named in itself, the one in use pressed. */
function Languages({ current }) {
  return html`<div class="languages" role="group" aria-label=${t('app.language')}>
    ${LANGUAGES.map(([tag, name]) => html`<button type="button" class="link" lang=${tag} data-locale=${tag}
      aria-pressed=${tag === current} onClick=${() => setLocale(tag)}>${name}</button>`)}
  </div>`;
}

function App() {
  const route = useRoute();
  const locale = useLocale();
  const [node, setNode] = useState(undefined);
  useEffect(() => {
    whenSignInNeeded(() => {
      const here = location.hash;
      if (!here.startsWith('#/signin')) go('signin', { next: here });
    });
  }, []);
  useEffect(() => { get('/cluster/status').then(setNode, () => setNode(undefined)); }, [route.parts[0]]);
  const current = route.parts[0] || 'executions';
  const section = current === 'execution' ? 'executions' : current === 'new-definition' ? 'definitions' : current;
  useEffect(() => {
    const label = nav().find(([id]) => id === section)?.[1] || 'Overture';
    document.title = `${label} · Overture`;
  }, [section, locale]);
  useEffect(() => { document.getElementById('main')?.focus({ preventScroll: true }); }, [section, route.parts.join('/')]);
  return html`
    <a class="skip" href="#main">${t('app.skip')}</a>
    <header class="top">
      <a class="brand" href="#/executions">Overture</a>
      <nav aria-label=${t('app.sections')}>
        ${nav().map(([id, label]) => html`<a href=${href(id)} aria-current=${id === section ? 'page' : undefined}>${label}</a>`)}
      </nav>
      <span class="node" title=${t('app.nodeTitle')}>
        ${node ? t('app.node', { id: node.nodeId, state: roleWord(node.state) }) : null}
        ${node?.leader && node.leader !== node.nodeId ? ` · ${t('app.leader', { id: node.leader })}` : null}
        ${token() ? html` · <button class="link" onClick=${() => { signOut(); go('signin'); }}>${t('app.signOut')}</button>` : null}
      </span>
      <${Languages} current=${locale} />
    </header>
    <main id="main" tabindex="-1"><${View} route=${route} /></main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
