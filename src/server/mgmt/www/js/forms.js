// Forms: labelled fields, typed argument editors (key = value [type], as RabbitMQ's
// forms), and submission with errors shown beside the button. Forms are built once per
// page and never re-rendered by refreshes, so typing is never lost.

import { h, flash } from './dom.js';

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

export function input(name, attrs = {}) {
  return h('input', { name, type: 'text', autocomplete: 'off', ...attrs });
}

export function select(name, options, value) {
  return h('select', { name }, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, label);
  }));
}

export function textarea(name, attrs = {}) {
  return h('textarea', { name, rows: 4, ...attrs });
}

const TYPES = [['string', 'String'], ['number', 'Number'], ['boolean', 'Boolean'], ['json', 'List / JSON']];

// Rows of key = value (type); a new empty row appears when the last one is used.
export function argsEditor(name, suggestions = []) {
  const rows = h('div', { class: 'args', dataset: { args: name } });
  const addRow = () => {
    const key = h('input', { type: 'text', class: 'arg-key', placeholder: 'key', autocomplete: 'off' });
    const value = h('input', { type: 'text', class: 'arg-value', placeholder: 'value', autocomplete: 'off' });
    const type = h('select', { class: 'arg-type' }, TYPES.map(([v, l]) => h('option', { value: v }, l)));
    const row = h('div', { class: 'arg-row' }, key, ' = ', value, ' ', type);
    key.addEventListener('input', () => {
      if (row === rows.lastElementChild && key.value) addRow();
    });
    rows.append(row);
    return row;
  };
  addRow();
  const wrap = h('div', { class: 'args-wrap' }, rows);
  if (suggestions.length) {
    wrap.append(h('div', { class: 'hint' }, 'Add: ', suggestions.map(([k, t]) =>
      h('button', {
        type: 'button', class: 'link', onclick: () => {
          const last = rows.lastElementChild;
          last.querySelector('.arg-key').value = k;
          last.querySelector('.arg-type').value = t;
          addRow();
          last.querySelector('.arg-value').focus();
        },
      }, k))));
  }
  wrap.read = () => {
    const out = {};
    for (const row of rows.children) {
      const k = row.querySelector('.arg-key').value.trim();
      if (!k) continue;
      const raw = row.querySelector('.arg-value').value;
      const t = row.querySelector('.arg-type').value;
      if (t === 'number') {
        const n = Number(raw);
        if (raw.trim() === '' || Number.isNaN(n)) throw new Error(`${k}: not a number`);
        out[k] = n;
      } else if (t === 'boolean') {
        out[k] = /^(true|yes|1)$/i.test(raw.trim());
      } else if (t === 'json') {
        try { out[k] = JSON.parse(raw); } catch { throw new Error(`${k}: not valid JSON`); }
      } else {
        out[k] = raw;
      }
    }
    return out;
  };
  wrap.reset = () => {
    rows.replaceChildren();
    addRow();
  };
  return wrap;
}

// A form whose submit calls `action(values, form)`; values are the named inputs (and
// argument editors' objects). Errors appear beside the button and in the flash area.
export function form(id, title, fields, action, { submit = title, reset = true } = {}) {
  const error = h('span', { class: 'form-error', role: 'alert' });
  const button = h('button', { type: 'submit' }, submit);
  const f = h('form', { id, class: 'form' }, fields, h('div', { class: 'actions' }, button, error));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    button.disabled = true;
    try {
      const done = await action(values(f), f);
      if (reset) resetForm(f);
      if (done) flash(done);
    } catch (err) {
      error.textContent = err.message;
      flash(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

export function values(f) {
  const out = {};
  for (const el of f.querySelectorAll('input[name], select[name], textarea[name]')) {
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'file') out[el.name] = el.files;
    else out[el.name] = el.value;
  }
  for (const a of f.querySelectorAll('.args-wrap')) {
    out[a.querySelector('.args').dataset.args] = a.read();
  }
  return out;
}

function resetForm(f) {
  for (const el of f.querySelectorAll('input[name]:not([type=checkbox]):not([type=hidden]), textarea[name]')) {
    if (!el.dataset.keep) el.value = '';
  }
  for (const a of f.querySelectorAll('.args-wrap')) a.reset();
}

// A button that asks before acting.
export function dangerButton(label, question, action) {
  return h('button', {
    type: 'button', class: 'danger', onclick: async (e) => {
      if (!window.confirm(question)) return;
      e.target.disabled = true;
      try {
        const done = await action();
        if (done) flash(done);
      } catch (err) {
        flash(err.message, 'error');
      } finally {
        e.target.disabled = false;
      }
    },
  }, label);
}
