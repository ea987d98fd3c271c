// What the JavaScript SDK test scripts share: the SDK's clients for a node, a record of the
// HTTP exchanges (so a failed check can show the request and the answer), a list of failed
// checks, and waiting on a condition with a deadline.

import { OrkesClients } from "@io-orkes/conductor-javascript";

/** A logger that keeps the SDK quiet unless OVERTURE_JS_DEBUG is set. */
export const logger = {
  debug: (...args) => process.env.OVERTURE_JS_DEBUG && console.error("[sdk debug]", ...args),
  info: (...args) => process.env.OVERTURE_JS_DEBUG && console.error("[sdk info]", ...args),
  warn: (...args) => console.error("[sdk warn]", ...args),
  error: (...args) => console.error("[sdk error]", ...args),
};

/**
 * The SDK's clients for a node at `baseUrl` (`http://host:port`, optionally with
 * `keyId:secret@` for an API key, which the SDK exchanges for a token).
 *
 * Returns `{ clients, client, exchanges, errors }`: the SDK's `OrkesClients`, its HTTP client,
 * the last HTTP exchanges it made (method, path, request body, status, answer body), newest
 * last, and every exchange answered with a status of 400 or more.
 */
export async function connect(baseUrl) {
  const url = new URL(baseUrl);
  let keyId;
  let keySecret;
  if (url.username) {
    keyId = decodeURIComponent(url.username);
    keySecret = decodeURIComponent(url.password);
    url.username = "";
    url.password = "";
  }
  const serverUrl = `${url.origin}/api`;
  const clients = await OrkesClients.from({ serverUrl, keyId, keySecret, logger });
  const client = clients.getClient();
  const exchanges = [];
  const errors = [];
  const pending = new WeakMap();
  client.interceptors.request.use(async (request) => {
    let body = "";
    try {
      body = request.body ? await request.clone().text() : "";
    } catch {
      body = "<unreadable>";
    }
    pending.set(request, body);
    return request;
  });
  client.interceptors.response.use(async (response, request) => {
    let answer = "";
    try {
      answer = await response.clone().text();
    } catch {
      answer = "<unreadable>";
    }
    const target = new URL(request.url);
    const exchange = {
      seq: ++sequence,
      method: request.method,
      path: target.pathname + target.search,
      request: clip(pending.get(request) ?? ""),
      status: response.status,
      response: clip(answer),
    };
    exchanges.push(exchange);
    if (exchanges.length > 50) exchanges.shift();
    if (response.status >= 400) errors.push(exchange);
    return response;
  });
  return { clients, client, exchanges, errors };
}

let sequence = 0;

/** The last exchange made after the one numbered `seq`, if any. */
function lastSince(exchanges, seq) {
  const last = exchanges[exchanges.length - 1];
  return last && last.seq > seq ? last : undefined;
}

function seqNow(exchanges) {
  return exchanges.length > 0 ? exchanges[exchanges.length - 1].seq : 0;
}

function clip(text) {
  return text.length > 600 ? `${text.slice(0, 600)}…` : text;
}

/** Records each check that fails, printing it at once with the last HTTP exchange. */
export class Checks {
  constructor(exchanges = []) {
    this.failures = [];
    this.exchanges = exchanges;
  }

  /** Records `what` as a failure unless `cond` holds. */
  check(cond, what) {
    if (!cond) {
      this.failures.push(what);
      console.log(`FAIL: ${what}`);
    }
    return !!cond;
  }

  /** Runs an SDK call; if it throws, records the failure with the exchange that failed. */
  async call(what, fn) {
    const before = seqNow(this.exchanges);
    try {
      return await fn();
    } catch (error) {
      const last = lastSince(this.exchanges, before);
      const exchange = last ? ` [${describe(last)}]` : "";
      this.check(false, `${what} threw ${error?.message ?? error}${exchange}`);
      return undefined;
    }
  }

  /** Runs an SDK call that must fail; returns the HTTP exchange that answered it (or undefined). */
  async rejects(what, fn) {
    const before = seqNow(this.exchanges);
    try {
      const got = await fn();
      this.check(false, `${what}: expected an error, got ${JSON.stringify(got)}`);
      return undefined;
    } catch {
      return lastSince(this.exchanges, before);
    }
  }

  /** Prints the summary line the Rust driver reads, and returns the exit code. */
  finish() {
    console.log(JSON.stringify({ failures: this.failures }));
    return this.failures.length > 0 ? 1 : 0;
  }
}

/** One HTTP exchange as one line: `METHOD path body → status answer`. */
export function describe(exchange) {
  const body = exchange.request ? ` ${exchange.request}` : "";
  return `${exchange.method} ${exchange.path}${body} → ${exchange.status} ${exchange.response}`;
}

/** Calls `probe` until it returns a truthy value or `timeoutMs` passes; returns its last value. */
export async function waitFor(probe, timeoutMs = 15000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value;
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Runs `main(baseUrl)` (which returns an exit code) with the URL from the command line. */
export function run(main) {
  main(process.argv[2]).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      console.log(JSON.stringify({ failures: [`uncaught: ${error?.stack ?? error}`] }));
      process.exit(1);
    },
  );
}
