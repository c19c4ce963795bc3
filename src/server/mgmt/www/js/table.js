// Tables that refresh in place: rows are keyed (by name), existing cells get their text
// patched only when it changed, rows come and go individually. And ListView, the
// paginated, sortable, filterable listing over the API's server-side paging.

import { h, clear, setText } from './dom.js';
import { get, query } from './api.js';
import { num } from './fmt.js';

// columns: [{ label, cell(item) -> string | Node, sort?: API field, cls?: string }]
export class KeyedTable {
  constructor(columns, keyOf, { empty = 'Nothing to show', onSort, id } = {}) {
    this.columns = columns;
    this.keyOf = keyOf;
    this.rows = new Map();
    this.tbody = h('tbody');
    this.emptyText = empty;
    this.heads = columns.map((c) => {
      const th = h('th', { class: c.cls || '', title: c.title || '' }, c.label);
      if (c.sort && onSort) {
        th.classList.add('sortable');
        th.addEventListener('click', () => onSort(c.sort));
      }
      return th;
    });
    this.el = h('table', { class: 'list', id }, h('thead', {}, h('tr', {}, this.heads)), this.tbody);
  }

  // Marks the sorted column.
  sorted(field, reverse) {
    this.columns.forEach((c, i) => {
      this.heads[i].classList.toggle('sorted', c.sort === field);
      this.heads[i].classList.toggle('reverse', c.sort === field && reverse);
    });
  }

  update(items) {
    const seen = new Set();
    items.forEach((item, i) => {
      const key = this.keyOf(item);
      seen.add(key);
      let row = this.rows.get(key);
      if (!row) {
        const cells = this.columns.map((c) => h('td', { class: c.cls || '' }));
        row = { tr: h('tr', { dataset: { key } }), cells };
        row.tr.append(...cells);
        this.rows.set(key, row);
      }
      this.columns.forEach((c, j) => patch(row.cells[j], c.cell(item)));
      const at = this.tbody.children[i];
      if (at !== row.tr) this.tbody.insertBefore(row.tr, at || null);
    });
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.tr.remove();
        this.rows.delete(key);
      }
    }
    const emptyRow = this.tbody.querySelector('tr.empty');
    if (!items.length && !emptyRow) {
      this.tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: this.columns.length }, this.emptyText)));
    } else if (items.length && emptyRow) {
      emptyRow.remove();
    }
  }
}

function patch(td, v) {
  if (v instanceof Node) {
    const sig = (v.getAttribute && (v.getAttribute('href') || '') + (v.getAttribute('class') || '')) + '|' + v.textContent;
    if (td.dataset.sig !== sig) {
      clear(td).append(v);
      td.dataset.sig = sig;
    }
  } else {
    setText(td, v);
  }
}

const listState = new Map();

// A listing of `/api/{resource}` (or the selected vhost's), paged on the server.
//   opts: { id, resource, columns, keyOf, fields (the `columns=` the table needs),
//           sort, vhost (function giving the selected vhost or '') }
export class ListView {
  constructor(opts) {
    this.opts = opts;
    const saved = listState.get(opts.id) || {};
    this.state = {
      page: 1,
      pageSize: Number(localStorage.getItem(`warren.pageSize.${opts.id}`)) || 100,
      name: '',
      regex: false,
      sort: opts.sort || 'name',
      reverse: false,
      ...saved,
    };
    listState.set(opts.id, this.state);
    this.table = new KeyedTable(opts.columns, opts.keyOf, {
      id: `${opts.id}-table`,
      empty: opts.empty || `No ${opts.resource}`,
      onSort: (field) => {
        if (this.state.sort === field) this.state.reverse = !this.state.reverse;
        else Object.assign(this.state, { sort: field, reverse: false });
        this.refresh();
      },
    });
    this.summary = h('span', { class: 'summary' });
    this.filter = h('input', {
      type: 'search', placeholder: 'Filter by name', value: this.state.name,
      class: 'filter', 'aria-label': 'Filter',
    });
    let debounce;
    this.filter.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        Object.assign(this.state, { name: this.filter.value, page: 1 });
        this.refresh();
      }, 250);
    });
    const regex = h('input', { type: 'checkbox', checked: this.state.regex });
    regex.addEventListener('change', () => {
      Object.assign(this.state, { regex: regex.checked, page: 1 });
      this.refresh();
    });
    const size = h('select', { 'aria-label': 'Page size' }, [25, 50, 100, 250, 500].map((n) =>
      h('option', { value: n, selected: n === this.state.pageSize }, `${n} per page`)));
    size.addEventListener('change', () => {
      Object.assign(this.state, { pageSize: Number(size.value), page: 1 });
      localStorage.setItem(`warren.pageSize.${opts.id}`, size.value);
      this.refresh();
    });
    this.pager = h('span', { class: 'pager' });
    this.error = h('div', { class: 'form-error' });
    this.el = h('div', { class: 'listview', id: opts.id },
      h('div', { class: 'list-controls' }, this.filter, h('label', {}, regex, ' Regex'), size, this.pager, this.summary),
      this.error, this.table.el);
  }

  path() {
    const v = this.opts.vhost ? this.opts.vhost() : '';
    if (!v) return `/${this.opts.resource}`;
    return this.opts.vhostPath ? this.opts.vhostPath(v) : `/${this.opts.resource}/${encodeURIComponent(v)}`;
  }

  async refresh() {
    const s = this.state;
    const q = query({
      page: s.page, page_size: s.pageSize, name: s.name, use_regex: s.regex,
      sort: s.sort, sort_reverse: s.reverse, pagination: true,
      columns: this.opts.fields ? this.opts.fields.join(',') : '',
    });
    let r;
    try {
      r = await get(this.path() + q);
    } catch (e) {
      if (e.body && e.body.error === 'page_out_of_range' && s.page > 1) {
        s.page = 1;
        return this.refresh();
      }
      setText(this.error, e.message);
      return;
    }
    setText(this.error, '');
    this.table.sorted(s.sort, s.reverse);
    this.table.update(r.items);
    this.renderPager(r);
  }

  renderPager(r) {
    const s = this.state;
    const filtered = r.filtered_count !== r.total_count ? ` (filtered from ${num(r.total_count)})` : '';
    setText(this.summary, `${num(r.filtered_count)} item${r.filtered_count === 1 ? '' : 's'}${filtered}`);
    const sig = `${r.page}/${r.page_count}`;
    if (this.pager.dataset.sig === sig) return;
    this.pager.dataset.sig = sig;
    clear(this.pager);
    if (r.page_count <= 1) return;
    const go = (p) => { s.page = p; this.refresh(); };
    const prev = h('button', { type: 'button', disabled: r.page <= 1, onclick: () => go(r.page - 1) }, '‹ Prev');
    const next = h('button', { type: 'button', disabled: r.page >= r.page_count, onclick: () => go(r.page + 1) }, 'Next ›');
    const pick = h('select', { 'aria-label': 'Page' });
    for (let p = 1; p <= r.page_count; p++) pick.append(h('option', { value: p, selected: p === r.page }, `Page ${p} of ${r.page_count}`));
    pick.addEventListener('change', () => go(Number(pick.value)));
    this.pager.append(prev, pick, next);
  }
}
