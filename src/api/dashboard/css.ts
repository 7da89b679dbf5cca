/** The dashboard's style sheet: light and dark by the system setting, one column on a phone. */
export const DASHBOARD_CSS = `
:root {
  --bg: #f5f6f8; --card: #ffffff; --fg: #1d2330; --muted: #6b7280; --line: #d9dde3; --accent: #2563eb;
  --ok: #15803d; --warn: #b45309; --bad: #dc2626; --edge: #94a3b8; --node: #f8fafc;
  --source: #2563eb; --transform: #7c3aed; --sink: #0f766e; --dead: #6b7280;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f141b; --card: #161d27; --fg: #e5e7eb; --muted: #9aa3af; --line: #2a3441; --node: #1c2531;
    --edge: #52627a; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header.top { display: flex; align-items: center; gap: .75rem; padding: .6rem 1rem; background: var(--card);
  border-bottom: 1px solid var(--line); flex-wrap: wrap; position: sticky; top: 0; z-index: 2; }
header h1 { font-size: 1.15rem; margin: 0; letter-spacing: .02em; }
.spacer { flex: 1; }
.muted { color: var(--muted); }
.small { font-size: .85em; }
#ledger .cause { font-weight: 400; white-space: nowrap; }
.pill { padding: .1rem .55rem; border-radius: 999px; border: 1px solid var(--line); font-size: .8rem; }
.pill.ok { color: var(--ok); border-color: var(--ok); }
.pill.bad, .pill.off { color: var(--bad); border-color: var(--bad); }
.pill.warn { color: var(--warn); border-color: var(--warn); }
main { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; padding: 1rem;
  max-width: 1500px; margin: 0 auto; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .8rem 1rem;
  min-width: 0; }
.card.wide { grid-column: 1 / -1; }
h2 { font-size: .95rem; margin: 0 0 .6rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
summary h2 { display: inline; }
summary { cursor: pointer; }
.graph { overflow-x: auto; }
.graph svg { display: block; min-width: 640px; width: 100%; height: auto; }
.legend { margin: .4rem 0 0; font-size: .8rem; }
svg .node rect.box { fill: var(--node); stroke: var(--line); stroke-width: 1.5; }
svg .node.source rect.box { stroke: var(--source); }
svg .node.transform rect.box { stroke: var(--transform); }
svg .node.sink rect.box { stroke: var(--sink); }
svg .node.dead_letter rect.box { stroke: var(--dead); stroke-dasharray: 4 3; }
svg .node.stalled rect.box { stroke: var(--bad); stroke-width: 3; }
svg .node text { fill: var(--fg); font-size: 12px; }
svg .node text.title { font-weight: 600; font-size: 13px; }
svg .node text.kind { fill: var(--muted); font-size: 11px; }
svg .node text.bad, .bad { fill: var(--bad); color: var(--bad); font-weight: 600; }
svg .node text.badge { fill: var(--bad); font-weight: 700; font-size: 11px; letter-spacing: .05em; }
svg rect.bar-bg { fill: var(--line); }
svg rect.bar { fill: var(--ok); }
svg rect.bar.high { fill: var(--warn); }
svg rect.bar.full { fill: var(--bad); }
svg path.edge { fill: none; stroke: var(--edge); stroke-linecap: round; opacity: .85; }
svg path.edge.dead { stroke-dasharray: 5 4; }
svg path.edge.idle { opacity: .4; }
svg text.edge-label { fill: var(--muted); font-size: 11px; paint-order: stroke; stroke: var(--card); stroke-width: 3px; }
.table-wrap { overflow-x: auto; }
table.data { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .92em; }
table.data th, table.data td { text-align: right; padding: .3rem .4rem; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data th { font-weight: 600; color: var(--muted); font-size: .8rem; }
table.data th[data-sort] { cursor: pointer; }
table.data th.sorted::after { content: " ▾"; }
table.data td .kind { color: var(--muted); font-size: .8em; margin-left: .35em; }
table.data tr.stalled td:first-child { border-left: 3px solid var(--bad); }
svg.spark { vertical-align: middle; margin-right: .35rem; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
svg.spark polyline.p99 { stroke: var(--warn); }
svg.spark polyline.fill { stroke: var(--sink); }
.row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-bottom: .5rem; }
select, input, button { font: inherit; color: inherit; background: var(--node); border: 1px solid var(--line);
  border-radius: 6px; padding: .2rem .45rem; }
button { cursor: pointer; }
input[type=number] { width: 5em; }
button:disabled { opacity: .5; cursor: default; }
pre.tap, pre.config { margin: 0; max-height: 22rem; overflow: auto; font-size: 12px; background: var(--node);
  border: 1px solid var(--line); border-radius: 6px; padding: .5rem; white-space: pre-wrap; word-break: break-all; }
footer { text-align: center; padding: 0 1rem 1.5rem; }
footer a { color: var(--muted); }
@media (max-width: 800px) {
  main { grid-template-columns: minmax(0, 1fr); padding: .5rem; gap: .5rem; }
  .card { padding: .6rem; }
  header.top { padding: .5rem; }
}
`;
