// Checks the web UI's catalogues (api/ui/src/locales/<language>.js) against its code and against
// each other. Run by tests/tests/ui.rs:
//
//   node catalogue.mjs [ui source dir]
//
// Fails, listing every problem, when a key the code passes to t() is missing from a catalogue,
// when a catalogue has a key no code uses, when the catalogues' keys differ, when a text is empty,
// or when a key's {placeholders} differ between languages.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = process.argv[2] || fileURLToPath(new URL('../../api/ui/src/', import.meta.url));
const problems = [];

/** A catalogue module's object (imported from its text: api/ui has no package.json "type"). */
async function catalogue(file) {
  const code = Buffer.from(readFileSync(file)).toString('base64');
  return (await import(`data:text/javascript;base64,${code}`)).default;
}

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'locales' || e.name === 'vendor' ? [] : sources(path);
    return e.name.endsWith('.js') ? [path] : [];
  });
}

/** The text of the first argument of the call whose `(` is at `open`. */
function firstArgument(text, open) {
  let depth = 0;
  let quote;
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c) && depth > 0) depth--;
    else if ((c === ',' || c === ')') && depth === 0) return text.slice(open + 1, i);
  }
  return text.slice(open + 1);
}

// The keys the code uses: every string literal in a t() call's first argument (so both keys of
// `t(done ? 'a' : 'b')` count); a template literal counts as the keys starting with its fixed part.
const used = new Map();
const prefixes = new Map();
for (const file of sources(src)) {
  const text = readFileSync(file, 'utf8');
  const where = (at) => `${relative(src, file)}:${text.slice(0, at).split('\n').length}`;
  for (const call of text.matchAll(/(?<![\w.$])(?<!function )t\(/g)) {
    const argument = firstArgument(text, call.index + 1);
    const literals = [...argument.matchAll(/'([^'\\]*)'|"([^"\\]*)"/g)].map((m) => m[1] ?? m[2]);
    const template = /`([^`$]*)\$\{/.exec(argument);
    if (template) prefixes.set(template[1], where(call.index));
    else if (!literals.length) problems.push(`${where(call.index)}: t(${argument}) names no key this check can read`);
    for (const key of literals) if (!used.has(key)) used.set(key, where(call.index));
  }
}

const dir = join(src, 'locales');
const languages = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.replace(/\.js$/, '')).sort();
const catalogues = Object.fromEntries(await Promise.all(languages.map(async (l) => [l, await catalogue(join(dir, `${l}.js`))])));
if (!languages.includes('en') || languages.length < 2) problems.push(`expected en and at least one other catalogue in ${dir}, found: ${languages.join(', ')}`);

const placeholders = (value) => [...String(value).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
const allKeys = new Set(languages.flatMap((l) => Object.keys(catalogues[l])));
for (const [key, at] of used) {
  for (const l of languages) if (!Object.hasOwn(catalogues[l], key)) problems.push(`${at}: "${key}" is missing from ${l}.js`);
}
for (const [prefix, at] of prefixes) {
  for (const l of languages) if (!Object.keys(catalogues[l]).some((k) => k.startsWith(prefix))) problems.push(`${at}: no key starting "${prefix}" in ${l}.js`);
}
for (const key of allKeys) {
  if (!used.has(key) && ![...prefixes.keys()].some((p) => key.startsWith(p))) problems.push(`"${key}" is in a catalogue but no code uses it`);
  const present = languages.filter((l) => Object.hasOwn(catalogues[l], key));
  for (const l of languages) if (!present.includes(l)) problems.push(`"${key}" is in ${present.join(', ')}.js but not in ${l}.js`);
  for (const l of present) {
    const value = catalogues[l][key];
    if (typeof value !== 'string' || !value.trim()) problems.push(`"${key}" is empty in ${l}.js`);
  }
  const shapes = new Set(present.map((l) => placeholders(catalogues[l][key])));
  if (shapes.size > 1) problems.push(`"${key}" has different placeholders: ${present.map((l) => `${l} {${placeholders(catalogues[l][key])}}`).join(', ')}`);
}

if (problems.length) {
  for (const p of problems) console.log(`not ok - ${p}`);
  process.exit(1);
}
console.log(`ok - ${used.size} keys used by the code, ${prefixes.size} key families built at run time, ${allKeys.size} keys in each of ${languages.join(', ')}`);
