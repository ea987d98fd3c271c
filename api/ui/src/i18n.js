// The UI's languages: one catalogue per language (locales/<tag>.js, a plain object of key → text,
// `{name}` marking a value filled in), the language in use, and numbers, times and durations
// written the way that language writes them, in the browser's time zone.
//
// The language: the one chosen with the switch in the header (remembered in localStorage), else
// the first of the browser's languages that is Chinese (any zh-*) or English, else English.
import { useEffect, useState } from './vendor/hooks.mjs';
import en from './locales/en.js';
import zhCN from './locales/zh-CN.js';

export const CATALOGUES = { en, 'zh-CN': zhCN };
/** The switch's choices, each named in its own language. */
export const LANGUAGES = [['zh-CN', '中文'], ['en', 'English']];
const STORED = 'overture.locale';

function remembered() {
  try { return localStorage.getItem(STORED); } catch { return null; }
}

function preferred() {
  const chosen = remembered();
  if (CATALOGUES[chosen]) return chosen;
  const browser = navigator.languages?.length ? navigator.languages : [navigator.language || ''];
  const known = browser.map((tag) => tag.toLowerCase()).find((tag) => /^(zh|en)\b/.test(tag));
  return known?.startsWith('zh') ? 'zh-CN' : 'en';
}

let current = preferred();
document.documentElement.lang = current;
const listeners = new Set();

export const locale = () => current;

/** Switches the language, remembers it for the next visit, and redraws whoever uses `useLocale`. */
export function setLocale(next) {
  if (!CATALOGUES[next]) return;
  current = next;
  document.documentElement.lang = next;
  try { localStorage.setItem(STORED, next); } catch { /* private mode: this visit only */ }
  for (const listener of listeners) listener(next);
}

/** The language in use, as state: a component using it is drawn again when it changes. */
export function useLocale() {
  const [value, setValue] = useState(current);
  useEffect(() => { listeners.add(setValue); return () => listeners.delete(setValue); }, []);
  return value;
}

/** Whether the catalogue has `key` (for keys made at run time, such as a status's). */
export const has = (key) => Object.hasOwn(CATALOGUES[current], key);

/** The text for `key` in the language in use, with `{name}` replaced by `params.name`. */
export function t(key, params) {
  let text = CATALOGUES[current][key];
  if (text === undefined) {
    console.error(`i18n: no text for "${key}" in ${current}`);
    text = CATALOGUES.en[key] ?? key;
  }
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
}

const formatters = new Map();
function cached(Kind, options) {
  const key = `${Kind.name}|${current}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) formatters.set(key, new Kind(current, options));
  return formatters.get(key);
}

export const number = (n, options = {}) => cached(Intl.NumberFormat, options).format(n);

/** Milliseconds since the epoch or an ISO string as a Date; undefined for none or nonsense. */
function toDate(value) {
  if (value === undefined || value === null || value === 0 || value === '') return undefined;
  const d = typeof value === 'number' ? new Date(value) : new Date(String(value));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Milliseconds since the epoch (or an ISO string) as a date and time in the browser's zone. */
export function dateTime(value) {
  const d = toDate(value);
  if (!d) return value ? String(value) : '—';
  return cached(Intl.DateTimeFormat, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    fractionalSecondDigits: 3, hourCycle: 'h23',
  }).format(d);
}

const STEPS = [['second', 60], ['minute', 60], ['hour', 24], ['day', Infinity]];

/** How far `value` (as for `dateTime`) is from now: "in 3 hours", "5分钟前"; '' for none. */
export function relative(value) {
  const d = toDate(value);
  if (!d) return '';
  let amount = (d.getTime() - Date.now()) / 1000;
  for (const [name, size] of STEPS) {
    if (Math.abs(amount) < size) return cached(Intl.RelativeTimeFormat, { numeric: 'auto' }).format(Math.round(amount), name);
    amount /= size;
  }
  return '';
}

const measure = (value, name, digits = 0) => number(value, { style: 'unit', unit: name, unitDisplay: 'short', maximumFractionDigits: digits });

/** A duration in milliseconds, in the units of the language in use. */
export function duration(ms) {
  if (ms === undefined || ms === null || ms < 0 || Number.isNaN(ms)) return '—';
  if (ms < 1000) return measure(Math.round(ms), 'millisecond');
  if (ms < 60_000) return measure(ms / 1000, 'second', ms < 10_000 ? 2 : 1);
  if (ms < 3_600_000) return `${measure(Math.floor(ms / 60_000), 'minute')} ${measure(Math.round((ms % 60_000) / 1000), 'second')}`;
  return `${measure(Math.floor(ms / 3_600_000), 'hour')} ${measure(Math.round((ms % 3_600_000) / 60_000), 'minute')}`;
}
