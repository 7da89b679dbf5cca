import type { HistoryDump } from '../history.ts';
import type { ComponentSnapshot, LedgerDrops, PipelineSnapshot } from '../snapshot.ts';

/**
 * The dashboard's browser code. It runs in the page, not in Node: script.ts serves its source text
 * (`dashboardClient.toString()`), so it must use nothing from outside its own body but browser globals. Written
 * in TypeScript so the compiler checks it against the snapshot types the server sends.
 */
export function dashboardClient(): void {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const HISTORY_MAX = 900;
  const NODE_W = 220;
  const COL_GAP = 140;
  const ROW_GAP = 26;
  const PAD = 16;

  type Series = Record<string, (number | null)[]>;
  const history: { at: number[]; series: Record<string, Series> } = { at: [], series: {} };
  let windowSeconds = 300;
  let graphKey = '';
  let sortKey = 'graph';
  let sortDescending = false;
  let latest: PipelineSnapshot | undefined;
  const nodeEls = new Map<string, Record<string, Element>>();
  const edgeEls = new Map<string, { path: SVGPathElement; label: SVGTextElement }>();

  const byId = (id: string) => document.getElementById(id) as HTMLElement;

  function svg<K extends keyof SVGElementTagNameMap>(
    tag: K,
    attrs: Record<string, string | number>,
    parent?: Element,
  ): SVGElementTagNameMap[K] {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    parent?.appendChild(e);
    return e;
  }

  function html<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    text?: string,
    className?: string,
    parent?: Element,
  ): HTMLElementTagNameMap[K] {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (className) e.className = className;
    parent?.appendChild(e);
    return e;
  }

  function num(n: number): string {
    const a = Math.abs(n);
    if (a >= 1e9) return `${(n / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
    if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
    if (a >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
    if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
    return a > 0 && a < 10 && !Number.isInteger(n) ? n.toFixed(1) : String(Math.round(n));
  }

  function bytes(n: number): string {
    if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
    if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
    if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${n} B`;
  }

  function ms(n: number | null | undefined): string {
    if (n === null || n === undefined) return '–';
    if (n >= 60_000) return `${(n / 60_000).toFixed(1)} min`;
    if (n >= 1000) return `${(n / 1000).toFixed(1)} s`;
    return `${n >= 10 ? Math.round(n) : n.toFixed(1)} ms`;
  }

  // ---- the graph ----------------------------------------------------------------------------------------------

  function columns(s: PipelineSnapshot): Map<string, number> {
    const kind = new Map(s.components.map((c) => [c.id, c.kind]));
    const inputs = new Map<string, string[]>();
    for (const e of s.edges) if (e.to !== 'dead_letter') inputs.set(e.to, [...(inputs.get(e.to) ?? []), e.from]);
    const col = new Map<string, number>();
    const depth = (id: string, seen: Set<string>): number => {
      const known = col.get(id);
      if (known !== undefined) return known;
      if (kind.get(id) === 'source' || seen.has(id)) return 0;
      seen.add(id);
      let d = 0;
      for (const from of inputs.get(id) ?? []) if (from !== 'dead_letter') d = Math.max(d, depth(from, seen) + 1);
      col.set(id, d);
      return d;
    };
    let maxTransform = 0;
    for (const c of s.components) {
      if (c.kind === 'source') col.set(c.id, 0);
      if (c.kind === 'transform') maxTransform = Math.max(maxTransform, depth(c.id, new Set()));
    }
    // The dead letter sits under the sinks: every component may feed it, so no column before the last is right.
    for (const c of s.components) if (c.kind === 'sink' || c.kind === 'dead_letter') col.set(c.id, maxTransform + 1);
    return col;
  }

  function nodeHeight(c: ComponentSnapshot): number {
    return c.kind === 'sink' ? 104 : c.kind === 'source' ? 94 : 76;
  }

  function buildGraph(s: PipelineSnapshot): void {
    const host = byId('graph');
    host.textContent = '';
    nodeEls.clear();
    edgeEls.clear();
    const col = columns(s);
    const perCol = new Map<number, ComponentSnapshot[]>();
    // The dead letter goes last in its column, under the components that feed it.
    const ordered = [
      ...s.components.filter((c) => c.kind !== 'dead_letter'),
      ...s.components.filter((c) => c.kind === 'dead_letter'),
    ];
    for (const c of ordered) {
      const k = col.get(c.id) ?? 0;
      perCol.set(k, [...(perCol.get(k) ?? []), c]);
    }
    // The dead letter hangs below its column and does not count for centring it.
    const colHeight = (list: ComponentSnapshot[]) => {
      const main = list.filter((c) => c.kind !== 'dead_letter');
      return main.reduce((h, c) => h + nodeHeight(c), 0) + ROW_GAP * Math.max(0, main.length - 1);
    };
    const tallest = Math.max(...[...perCol.values()].map(colHeight));
    const deadLetterHeight = 76 + ROW_GAP;
    const ncols = Math.max(...perCol.keys()) + 1;
    // Room on the right for the loops between a sink and the dead letter below it.
    const width = PAD * 2 + ncols * NODE_W + (ncols - 1) * COL_GAP + 90;
    const height = PAD * 2 + tallest + deadLetterHeight + 50;
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height }, host);
    root.style.maxWidth = `${Math.max(width, 640)}px`;
    const edgeLayer = svg('g', { class: 'edges' }, root);
    const nodeLayer = svg('g', { class: 'nodes' }, root);
    const pos = new Map<string, { x: number; y: number; h: number }>();
    for (const [k, list] of perCol) {
      let y = PAD + (tallest - colHeight(list)) / 2;
      const x = PAD + k * (NODE_W + COL_GAP);
      for (const c of list) {
        if (c.kind === 'dead_letter') y = PAD + tallest + ROW_GAP + 40;
        pos.set(c.id, { x, y, h: nodeHeight(c) });
        y += nodeHeight(c) + ROW_GAP;
      }
    }
    for (const c of ordered) {
      const p = pos.get(c.id)!;
      const g = svg(
        'g',
        { class: `node ${c.kind}`, 'data-node': c.id, transform: `translate(${p.x},${p.y})` },
        nodeLayer,
      );
      svg('rect', { class: 'box', width: NODE_W, height: p.h, rx: 8 }, g);
      const title = svg('text', { class: 'title', x: 10, y: 20 }, g);
      title.textContent = c.id.length > 24 ? `${c.id.slice(0, 23)}…` : c.id;
      const kind = svg('text', { class: 'kind', x: 10, y: 36 }, g);
      kind.textContent = c.kind === 'dead_letter' ? 'dead letter output' : `${c.kind} · ${c.type}`;
      const badge = svg('text', { class: 'badge', x: NODE_W - 10, y: 20, 'text-anchor': 'end' }, g);
      const rates = svg('text', { class: 'rates', x: 10, y: 54 }, g);
      const errors = svg('text', { class: 'errors', x: 10, y: 70 }, g);
      const els: Record<string, Element> = { g, badge, rates, errors };
      if (c.kind === 'source') els.acks = svg('text', { class: 'acks', x: 10, y: 86 }, g);
      if (c.kind === 'sink') {
        svg('rect', { class: 'bar-bg', x: 10, y: 80, width: NODE_W - 20, height: 6, rx: 3 }, g);
        els.bar = svg('rect', { class: 'bar', x: 10, y: 80, width: 0, height: 6, rx: 3 }, g);
        els.buffer = svg('text', { class: 'buffer', x: 10, y: 99 }, g);
      }
      nodeEls.set(c.id, els);
    }
    for (const e of s.edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W;
      const y1 = a.y + a.h / 2;
      const x2 = b.x;
      const y2 = b.y + b.h / 2;
      // Within one column (a sink's dead letters): out of the right side and back in. Backwards (the dead letter
      // read by a transform): out of the bottom and in from below.
      const same = a.x === b.x;
      const back = !same && x2 <= x1;
      const bulge = 40 + Math.abs(y2 - y1) / 8;
      const d = same
        ? `M${x1},${y1} C${x1 + bulge},${y1} ${x1 + bulge},${y2} ${x1},${y2}`
        : back
          ? `M${a.x + NODE_W / 2},${a.y + a.h} C${a.x + NODE_W / 2},${a.y + a.h + 60} ${b.x + NODE_W / 2},${b.y + b.h + 60} ${b.x + NODE_W / 2},${b.y + b.h}`
          : `M${x1},${y1} C${x1 + COL_GAP / 2},${y1} ${x2 - COL_GAP / 2},${y2} ${x2},${y2}`;
      const dead = e.to === 'dead_letter' || e.from === 'dead_letter';
      const path = svg(
        'path',
        { class: `edge${dead ? ' dead' : ''}`, d, 'data-edge': `${e.from}->${e.to}` },
        edgeLayer,
      );
      const mx = same ? x1 + bulge * 0.75 + 4 : back ? (a.x + b.x + NODE_W) / 2 : (x1 + x2) / 2;
      const my = same ? (y1 + y2) / 2 : back ? Math.max(a.y + a.h, b.y + b.h) + 40 : (y1 + y2) / 2 - 6;
      const label = svg(
        'text',
        { class: 'edge-label', x: mx, y: my, 'text-anchor': same ? 'start' : 'middle' },
        edgeLayer,
      );
      edgeEls.set(`${e.from}->${e.to}`, { path, label });
    }
  }

  function updateGraph(s: PipelineSnapshot): void {
    const key = JSON.stringify([s.components.map((c) => `${c.id}:${c.kind}`), s.edges.map((e) => `${e.from}>${e.to}`)]);
    if (key !== graphKey) {
      graphKey = key;
      buildGraph(s);
    }
    for (const c of s.components) {
      const els = nodeEls.get(c.id);
      if (!els) continue;
      const g = els.g!;
      g.setAttribute('data-in', String(c.in_per_s));
      g.setAttribute('data-out', String(c.out_per_s));
      g.setAttribute('data-errors', String(c.errors_total));
      g.classList.toggle('stalled', c.stalled === true);
      g.setAttribute('data-stalled', String(c.stalled === true));
      els.badge!.textContent = c.stalled ? 'STALLED' : '';
      els.rates!.textContent =
        c.kind === 'source'
          ? `out ${num(c.out_per_s)}/s`
          : c.kind === 'dead_letter'
            ? `${num(c.in_per_s)}/s · ${num(c.received_total)} total`
            : `in ${num(c.in_per_s)}/s → out ${num(c.out_per_s)}/s`;
      const parts = [`errors ${num(c.errors_total)}`];
      if (c.kind === 'sink') parts.push(`retries ${num(c.retries_total)}`);
      if (c.dead_lettered_total > 0) parts.push(`dead ${num(c.dead_lettered_total)}`);
      if (c.kind === 'sink' && c.latency_p99_ms !== null && c.latency_p99_ms !== undefined)
        parts.push(`p99 ${ms(c.latency_p99_ms)}`);
      els.errors!.textContent = c.kind === 'dead_letter' ? '' : parts.join(' · ');
      els.errors!.setAttribute('class', `errors${c.errors_total > 0 ? ' bad' : ''}`);
      if (els.acks)
        els.acks.textContent = `pending ${num(c.pending_acks ?? 0)} · oldest ${c.oldest_unacked_ms === null ? '–' : ms(c.oldest_unacked_ms)}`;
      if (c.buffer && els.bar && els.buffer) {
        const f = c.buffer.fill;
        g.setAttribute('data-fill', String(f));
        g.setAttribute('data-buffer-events', String(c.buffer.events));
        els.bar.setAttribute('width', String(Math.max(f > 0 ? 2 : 0, (NODE_W - 20) * f)));
        els.bar.setAttribute('class', `bar${f >= 0.9 ? ' full' : f >= 0.5 ? ' high' : ''}`);
        els.buffer.textContent = `${(f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0)}% · ${num(c.buffer.events)} ev · ${bytes(c.buffer.bytes)} · ${c.buffer.type}`;
      }
    }
    for (const e of s.edges) {
      const el = edgeEls.get(`${e.from}->${e.to}`);
      if (!el) continue;
      el.path.setAttribute('stroke-width', String(Math.min(12, 1.5 + 1.6 * Math.log10(1 + e.per_s))));
      el.path.setAttribute('data-rate', String(e.per_s));
      el.path.classList.toggle('idle', e.per_s === 0);
      const output = e.output === 'dead_letter' ? '' : e.output.replace(/^_/, '');
      el.label.textContent = `${output ? `${output}: ` : ''}${num(e.per_s)}/s`;
    }
  }

  // ---- history and tables -------------------------------------------------------------------------------------

  function pushHistory(s: PipelineSnapshot): void {
    history.at.push(s.at);
    const fields = ['in_per_s', 'out_per_s', 'errors_per_s', 'fill', 'latency_p50_ms', 'latency_p99_ms'] as const;
    for (const c of s.components) {
      let series = history.series[c.id];
      if (!series) {
        series = {};
        for (const f of fields) series[f] = new Array(history.at.length - 1).fill(null);
        history.series[c.id] = series;
      }
    }
    for (const [id, series] of Object.entries(history.series)) {
      const c = s.components.find((x) => x.id === id);
      const point: Record<string, number | null> = {
        in_per_s: c?.in_per_s ?? null,
        out_per_s: c?.out_per_s ?? null,
        errors_per_s: c?.errors_per_s ?? null,
        fill: c?.buffer?.fill ?? null,
        latency_p50_ms: c?.latency_p50_ms ?? null,
        latency_p99_ms: c?.latency_p99_ms ?? null,
      };
      for (const f of fields) series[f]!.push(point[f] ?? null);
    }
    if (history.at.length > HISTORY_MAX) {
      const cut = history.at.length - HISTORY_MAX;
      history.at.splice(0, cut);
      for (const series of Object.values(history.series)) for (const f of fields) series[f]!.splice(0, cut);
    }
  }

  function sparkline(lines: { values: (number | null)[]; cls?: string }[], fixedMax?: number): SVGSVGElement {
    const w = 64;
    const h = 20;
    const spark = svg('svg', { class: 'spark', width: w, height: h, viewBox: `0 0 ${w} ${h}` });
    const n = Math.min(windowSeconds, history.at.length);
    let max = fixedMax ?? 0;
    if (fixedMax === undefined)
      for (const l of lines) for (const v of l.values.slice(-n)) if (v !== null && v > max) max = v;
    if (max <= 0) max = 1;
    for (const l of lines) {
      const values = l.values.slice(-n);
      const points: string[] = [];
      values.forEach((v, i) => {
        if (v === null) return;
        const x = n <= 1 ? w : (i / (n - 1)) * w;
        points.push(`${x.toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
      });
      if (points.length > 0) svg('polyline', { points: points.join(' '), class: l.cls ?? '' }, spark);
    }
    return spark;
  }

  function sortValue(c: ComponentSnapshot): number | string {
    switch (sortKey) {
      case 'graph':
        return 0;
      case 'id':
        return c.id;
      case 'fill':
        return c.buffer?.fill ?? -1;
      case 'pending':
        return c.pending_acks ?? -1;
      case 'p99':
        return c.latency_p99_ms ?? -1;
      default:
        return (c as unknown as Record<string, number>)[sortKey] ?? 0;
    }
  }

  function renderTable(s: PipelineSnapshot): void {
    const body = byId('components').querySelector('tbody')!;
    body.textContent = '';
    const rows = [...s.components].sort((a, b) => {
      const x = sortValue(a);
      const y = sortValue(b);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sortDescending ? -order : order;
    });
    for (const c of rows) {
      const series = history.series[c.id] ?? {};
      const tr = html('tr', undefined, c.stalled ? 'stalled' : '', body);
      tr.setAttribute('data-component', c.id);
      const name = html('td', c.id, undefined, tr);
      html(
        'span',
        c.kind === 'dead_letter'
          ? 'dead letter'
          : `${c.kind} · ${c.type}${c.buffer ? ` · ${c.buffer.type} buffer` : ''}`,
        'kind',
        name,
      );
      const rateCell = (values: (number | null)[] | undefined, value: number) => {
        const td = html('td', undefined, undefined, tr);
        td.appendChild(sparkline([{ values: values ?? [] }]));
        td.appendChild(document.createTextNode(num(value)));
      };
      rateCell(series.in_per_s, c.in_per_s);
      rateCell(series.out_per_s, c.out_per_s);
      const err = html('td', num(c.errors_total), c.errors_total > 0 ? 'bad' : '', tr);
      err.title = Object.entries(c.error_types)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
      html('td', c.kind === 'sink' ? num(c.retries_total) : '', undefined, tr);
      const buf = html('td', undefined, undefined, tr);
      if (c.buffer) {
        buf.appendChild(sparkline([{ values: series.fill ?? [], cls: 'fill' }], 1));
        buf.appendChild(
          document.createTextNode(
            `${(c.buffer.fill * 100).toFixed(0)}% · ${num(c.buffer.events)} ev · ${bytes(c.buffer.bytes)}`,
          ),
        );
        if (c.stalled) html('span', ' stalled', 'bad', buf);
      }
      html(
        'td',
        c.kind === 'source'
          ? `${num(c.pending_acks ?? 0)} · oldest ${c.oldest_unacked_ms === null ? '–' : ms(c.oldest_unacked_ms)}`
          : '',
        undefined,
        tr,
      );
      const lat = html('td', undefined, undefined, tr);
      if (c.kind === 'sink') {
        lat.appendChild(
          sparkline([{ values: series.latency_p50_ms ?? [] }, { values: series.latency_p99_ms ?? [], cls: 'p99' }]),
        );
        lat.appendChild(document.createTextNode(`${ms(c.latency_p50_ms)} / ${ms(c.latency_p99_ms)}`));
      }
    }
  }

  const DROP_CAUSES: [keyof LedgerDrops, string, string][] = [
    ['buffer_full', 'buffer full', 'a sink buffer with when_full: drop_newest was full'],
    ['throttled', 'throttled', 'over a throttle budget'],
    ['udp_backlog', 'udp backlog', 'datagrams dropped while the pipeline was blocked'],
    ['udp_kernel', 'udp kernel', "datagrams the kernel dropped from the socket's full receive queue"],
    ['partial', 'partial', 'unterminated lines or frames at a connection close'],
  ];

  function renderLedger(s: PipelineSnapshot): void {
    const body = byId('ledger').querySelector('tbody')!;
    body.textContent = '';
    for (const l of s.ledger) {
      const tr = html('tr', undefined, undefined, body);
      tr.setAttribute('data-source', l.source);
      html('td', l.source + (l.shared ? ' *' : ''), undefined, tr).title = l.shared
        ? 'shares downstream components with another source: their dead letters and drops count in both rows'
        : '';
      for (const v of [l.accepted, l.acknowledged, l.in_flight]) html('td', num(v), undefined, tr);
      for (const v of [l.not_acknowledged, l.dead_lettered]) html('td', num(v), v > 0 ? 'bad' : '', tr);
      const dropped = html('td', num(l.dropped), l.dropped > 0 ? 'bad' : '', tr);
      dropped.setAttribute('data-dropped', String(l.dropped));
      const causes: string[] = [];
      for (const [key, name, why] of DROP_CAUSES) {
        const n = l.drops?.[key] ?? 0;
        causes.push(`${name}: ${n} (${why})`);
        if (n === 0) continue;
        const line = html('div', `${name} ${num(n)}`, 'cause small', dropped);
        line.setAttribute('data-cause', key);
      }
      dropped.title = causes.join('\n');
    }
  }

  function renderState(s: PipelineSnapshot): void {
    const state = byId('state');
    state.textContent = s.state;
    state.className = `pill ${s.state === 'running' ? 'ok' : 'warn'}`;
  }

  function renderTapChoices(s: PipelineSnapshot): void {
    const select = byId('tap-component') as HTMLSelectElement;
    const ids = s.components.filter((c) => c.kind !== 'dead_letter').map((c) => c.id);
    if (select.options.length === ids.length && ids.every((id, i) => select.options[i]!.value === id)) return;
    const keep = select.value;
    select.textContent = '';
    for (const id of ids) html('option', id, undefined, select).value = id;
    if (ids.includes(keep)) select.value = keep;
  }

  function update(s: PipelineSnapshot): void {
    latest = s;
    pushHistory(s);
    renderState(s);
    updateGraph(s);
    renderTable(s);
    renderLedger(s);
    renderTapChoices(s);
  }

  // ---- tap ----------------------------------------------------------------------------------------------------

  let tapAbort: AbortController | undefined;
  async function startTap(): Promise<void> {
    tapAbort?.abort();
    const id = (byId('tap-component') as HTMLSelectElement).value;
    const sample = Math.max(1, Number((byId('tap-sample') as HTMLInputElement).value) || 1);
    const out = byId('tap-out');
    out.textContent = `waiting for events of ${id}…\n`;
    const abort = new AbortController();
    tapAbort = abort;
    (byId('tap-start') as HTMLButtonElement).disabled = true;
    (byId('tap-stop') as HTMLButtonElement).disabled = false;
    const lines: string[] = [];
    try {
      const res = await fetch(`/tap?component=${encodeURIComponent(id)}&limit=50&sample=${sample}`, {
        signal: abort.signal,
      });
      if (!res.ok || !res.body) {
        out.textContent = `tap refused: ${res.status} ${await res.text()}`;
        return;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        rest += value;
        const parts = rest.split('\n');
        rest = parts.pop() ?? '';
        for (const p of parts) {
          if (p === '') continue;
          const m = JSON.parse(p) as { event?: unknown; output?: string; tap_end?: boolean; sent?: number };
          lines.unshift(
            m.tap_end
              ? `— end of tap: ${m.sent} events shown —`
              : `${m.output ? `[${m.output}] ` : ''}${JSON.stringify(m.event)}`,
          );
        }
        out.textContent = lines.slice(0, 50).join('\n');
      }
    } catch (error) {
      if (!abort.signal.aborted) out.textContent = `tap failed: ${(error as Error).message}`;
    } finally {
      if (tapAbort === abort) {
        (byId('tap-start') as HTMLButtonElement).disabled = false;
        (byId('tap-stop') as HTMLButtonElement).disabled = true;
      }
    }
  }

  // ---- start --------------------------------------------------------------------------------------------------

  async function getJson<T>(path: string): Promise<T | undefined> {
    try {
      const res = await fetch(path, { headers: { accept: 'application/json' } });
      return res.ok ? ((await res.json()) as T) : undefined;
    } catch {
      return undefined;
    }
  }

  async function start(): Promise<void> {
    byId('tap-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void startTap();
    });
    byId('tap-stop').addEventListener('click', () => {
      tapAbort?.abort();
      (byId('tap-start') as HTMLButtonElement).disabled = false;
      (byId('tap-stop') as HTMLButtonElement).disabled = true;
    });
    byId('window').addEventListener('change', (e) => {
      windowSeconds = Number((e.target as HTMLSelectElement).value);
      if (latest) renderTable(latest);
    });
    for (const th of byId('components').querySelectorAll('th[data-sort]')) {
      th.addEventListener('click', () => {
        const key = th.getAttribute('data-sort')!;
        sortDescending = key === sortKey ? !sortDescending : key !== 'id';
        sortKey = key;
        for (const other of byId('components').querySelectorAll('th')) other.classList.toggle('sorted', other === th);
        if (latest) renderTable(latest);
      });
    }
    const [topology, past, config] = await Promise.all([
      getJson<{ version?: string; data_dir?: string }>('/api/topology'),
      getJson<HistoryDump>('/api/history'),
      getJson<unknown>('/api/config'),
    ]);
    if (topology?.version) byId('version').textContent = `${topology.version} · data_dir ${topology.data_dir ?? ''}`;
    if (config !== undefined) byId('config').textContent = JSON.stringify(config, null, 2);
    if (past) {
      history.at = past.at.slice(-HISTORY_MAX);
      for (const [id, series] of Object.entries(past.series)) {
        const s: Series = {};
        for (const [f, values] of Object.entries(series)) s[f] = values.slice(-HISTORY_MAX);
        history.series[id] = s;
      }
    }
    const live = byId('live');
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      live.textContent = 'live';
      live.className = 'pill ok';
    });
    events.addEventListener('error', () => {
      live.textContent = 'reconnecting';
      live.className = 'pill off';
    });
    events.addEventListener('snapshot', (e) =>
      update(JSON.parse((e as MessageEvent<string>).data) as PipelineSnapshot),
    );
  }

  void start();
}
