// The console's only way to build the page: elements with properties, and
// text as text nodes. No HTML is ever parsed from a string, so a value from
// the database or a webhook (`<img src=x onerror=…>`) shows as the characters
// it holds.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'type', 'name',
  'placeholder', 'min', 'max', 'step', 'rows', 'required', 'multiple', 'readOnly', 'title',
  'htmlFor', 'id', 'className', 'href', 'autocomplete', 'spellcheck', 'colSpan', 'width',
  'height', 'open', 'inputMode']);

// h('div', {className: 'x', onclick: fn, dataset: {test: 'y'}}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'for') el.htmlFor = v;
    else if (PROPS.has(k)) el[k] = v;
    else if (k.startsWith('aria-') || k === 'role') el.setAttribute(k, String(v));
    else throw new Error(`dom: attribute ${k} is not allowed`);
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, ...children);
}

// A value of unknown shape as text: strings as they are, the rest as JSON.
export function text(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

// JSON text indented for reading; a string that is not JSON as it is.
export function pretty(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') {
    try {
      return JSON.stringify(JSON.parse(v), null, 2);
    } catch {
      return v;
    }
  }
  return JSON.stringify(v, null, 2);
}

export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toLocaleString(undefined, { hour12: false });
}

// JSON text re-indented without parsing it, so numbers keep their exact text
// (`12.50`, ids past 2^53). Text that is not JSON comes out as it went in,
// give or take whitespace outside strings.
export function indentJson(src) {
  if (typeof src !== 'string') return pretty(src);
  let out = '';
  let depth = 0;
  let inString = false;
  const nl = () => `\n${'  '.repeat(depth)}`;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (inString) {
      out += c;
      if (c === '\\') out += src[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      let j = i + 1;
      while (j < src.length && ' \n\r\t'.includes(src[j])) j++;
      if (src[j] === close) {
        out += c + close;
        i = j;
      } else {
        depth++;
        out += c + nl();
      }
    } else if (c === '}' || c === ']') {
      depth = Math.max(0, depth - 1);
      out += nl() + c;
    } else if (c === ',') {
      out += `,${nl()}`;
    } else if (c === ':') {
      out += ': ';
    } else {
      out += c;
    }
  }
  return out;
}
