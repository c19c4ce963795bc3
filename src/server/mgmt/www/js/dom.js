// A small element builder and page helpers. No innerHTML anywhere: text is always set
// as text, so names from the broker can never inject markup.

export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (!svg && k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Sets an element's text only when it changed (keeps selection and avoids reflow).
export function setText(el, text) {
  const t = text === undefined || text === null ? '' : String(text);
  if (el.textContent !== t) el.textContent = t;
}

// A section with a heading, collapsible as RabbitMQ's.
export function section(title, ...children) {
  return h('details', { class: 'section', open: true }, h('summary', {}, title), ...children);
}

// A key/value table whose values are updated in place: returns [table, update(obj)].
export function facts(rows) {
  const cells = rows.map(([label]) => h('td', { dataset: { fact: label } }));
  const table = h('table', { class: 'facts' },
    h('tbody', {}, rows.map(([label], i) => h('tr', {}, h('th', {}, label), cells[i]))));
  const update = (obj) => rows.forEach(([, f], i) => {
    const v = f(obj);
    if (v instanceof Node) {
      if (cells[i].dataset.sig !== v.textContent) {
        clear(cells[i]).append(v);
        cells[i].dataset.sig = v.textContent;
      }
    } else {
      setText(cells[i], v);
    }
  });
  return [table, update];
}

let flashTimer;
export function flash(text, kind = 'ok') {
  const el = document.getElementById('flash');
  clear(el).append(h('div', { class: `flash ${kind}` }, text));
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => clear(el), kind === 'error' ? 10000 : 4000);
}

// A link to a route; parts are encoded into the hash.
export function link(text, ...parts) {
  return h('a', { href: href(...parts) }, text);
}

export function href(...parts) {
  return '#/' + parts.map(encodeURIComponent).join('/');
}
