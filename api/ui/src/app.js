// The shell: navigation, sign-in, and the view the URL names.
import { render } from './vendor/preact.mjs';
import { useEffect, useState } from './vendor/hooks.mjs';
import { get, signIn, signOut, token, whenSignInNeeded } from './api.js';
import { Failure, html } from './lib.js';
import { go, href, useRoute } from './router.js';
import { Executions } from './executions.js';
import { Execution } from './execution.js';
import { Definition, Definitions, TaskDefinitions } from './definitions.js';
import { Cluster, EventHandlers, Queues, Schedules } from './ops.js';

const NAV = [
  ['executions', 'Executions'],
  ['definitions', 'Definitions'],
  ['taskdefs', 'Task definitions'],
  ['schedules', 'Schedules'],
  ['queues', 'Queues'],
  ['events', 'Event handlers'],
  ['cluster', 'Cluster'],
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
      setError(err.status === 401 ? new Error('Unknown key id or wrong secret.') : err);
    }
  };
  return html`<section class="signin">
    <h1>Sign in</h1>
    <p>Authentication is on for this cluster. Sign in with an API key (its id and secret, as configured in <code>api_keys</code>).
      The token is kept for this tab only.</p>
    <form onSubmit=${submit}>
      <label>Key id <input name="keyId" autocomplete="username" required value=${keyId} onInput=${(e) => setKeyId(e.target.value)} /></label>
      <label>Secret <input name="keySecret" type="password" autocomplete="current-password" required value=${secret} onInput=${(e) => setSecret(e.target.value)} /></label>
      <${Failure} error=${error} />
      <button class="primary" type="submit">Sign in</button>
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
    default: return html`<section><h1>Not found</h1><p>No view called “${first}”. <a href="#/executions">See the executions</a>.</p></section>`;
  }
}

function App() {
  const route = useRoute();
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
    const label = NAV.find(([id]) => id === section)?.[1] || 'Overture';
    document.title = `${label} · Overture`;
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [section, route.parts.join('/')]);
  return html`
    <header class="top">
      <a class="brand" href="#/executions">Overture</a>
      <nav aria-label="Sections">
        ${NAV.map(([id, label]) => html`<a href=${href(id)} aria-current=${id === section ? 'page' : undefined}>${label}</a>`)}
      </nav>
      <span class="node" title="The node serving this page">
        ${node ? html`node ${node.nodeId} · ${node.state}${node.leader && node.leader !== node.nodeId ? ` · leader ${node.leader}` : ''}` : null}
        ${token() ? html` · <button class="link" onClick=${() => { signOut(); go('signin'); }}>Sign out</button>` : null}
      </span>
    </header>
    <main id="main" tabindex="-1"><${View} route=${route} /></main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
