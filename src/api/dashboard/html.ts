/**
 * The dashboard page at GET / (browsers). Everything it needs is served by the process itself (/dashboard.css,
 * /dashboard.js, the /api/* JSON and event stream): no CDN, works offline.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fluxo</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Fluxo</h1>
  <span id="version" class="muted"></span>
  <span id="state" class="pill">connecting</span>
  <span id="live" class="pill off" title="Server-Sent Events from /api/events">offline</span>
  <span class="spacer"></span>
  <label class="muted">history
    <select id="window">
      <option value="300">5 min</option>
      <option value="900">15 min</option>
    </select>
  </label>
</header>
<main>
  <section class="card wide">
    <h2>Pipeline</h2>
    <div id="graph" class="graph" role="img" aria-label="the pipeline as a graph"></div>
    <p class="legend muted">Edge width and label: events/s. A red sink holds events and delivers none (stalled);
      the bar under a sink is its buffer fill.</p>
  </section>
  <section class="card wide">
    <h2>Components</h2>
    <div class="table-wrap">
      <table id="components" class="data">
        <thead><tr>
          <th data-sort="id">component</th><th data-sort="in_per_s">in/s</th><th data-sort="out_per_s">out/s</th>
          <th data-sort="errors_total">errors</th><th data-sort="retries_total">retries</th>
          <th data-sort="fill">buffer</th><th data-sort="pending">pending acks</th><th data-sort="p99" title="end-to-end latency over the last 10 s">p50 / p99</th>
        </tr></thead>
        <tbody></tbody>
      </table>
    </div>
  </section>
  <section class="card">
    <h2>Loss ledger</h2>
    <p class="muted small">Per source: every accepted event ends acknowledged, in flight, dead-lettered or dropped.
      Drops show their cause: buffer full (drop_newest), throttled, UDP datagrams lost in Fluxo's backlog or the
      kernel's receive queue (never accepted), partial lines at a connection close.</p>
    <div class="table-wrap">
      <table id="ledger" class="data">
        <thead><tr><th>source</th><th>accepted</th><th>acknowledged</th><th>in flight</th><th>not acked</th>
          <th>dead-lettered</th><th title="under the total: its causes; hover for all of them">dropped, by cause</th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
  </section>
  <section class="card">
    <h2>Tap</h2>
    <form id="tap-form" class="row">
      <select id="tap-component" aria-label="component"></select>
      <label class="muted">every <input id="tap-sample" type="number" min="1" value="10" size="4"> th</label>
      <button id="tap-start" type="submit">Start</button>
      <button id="tap-stop" type="button" disabled>Stop</button>
    </form>
    <pre id="tap-out" class="tap muted">Pick a component and start: its events appear here (sampled, at most 50).</pre>
  </section>
  <section class="card wide">
    <details id="config-details">
      <summary><h2>Configuration</h2> <span class="muted small">(secrets redacted)</span></summary>
      <pre id="config" class="config"></pre>
    </details>
  </section>
</main>
<footer class="muted small">Served by this Fluxo process: <a href="/metrics">/metrics</a> · <a href="/api/topology">/api/topology</a> ·
  <a href="/api/snapshot">/api/snapshot</a> · <a href="/health">/health</a></footer>
</body>
</html>
`;

/** What a browser gets without the API's credentials. */
export function unauthorizedPage(bearer: boolean): string {
  const how = bearer
    ? 'Open this page once as <code>/?token=YOUR_TOKEN</code> (the token of <code>api.auth</code>): it is kept in a cookie and removed from the address.'
    : 'Reload the page and give the user and password of <code>api.auth</code>.';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Fluxo: unauthorized</title><link rel="icon" href="data:,"></head><body style="font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em"><h1>Fluxo</h1><p>This API needs the credentials of <code>api.auth</code>.</p><p>${how}</p></body></html>\n`;
}
