/**
 * Micro-benchmark of the dashboard's sampler (src/api/telemetry.ts): what one snapshot of a ~50-component
 * pipeline costs (registry read, rates, ledger, history ring, the JSON for every viewer), and what each
 * connected `/api/events` viewer adds. A real topology (generator → N filters in a chain → blackhole, built
 * from YAML with the real registry) runs a fixed count of events first, so every counter and the latency
 * histogram hold values; then the pipeline is idle and only the sampler runs.
 *
 *   node --import tsx bench/micro/sampler.ts [--transforms 48] [--samples 500] [--clients 50]
 *
 * Prints one JSON line: µs of CPU per sample, the share of one core at the 1 Hz the API samples at, and the
 * CPU of the fan-out (the same JSON written to every SSE client's socket) per sample and per client.
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ApiServer } from '../../src/api/server.ts';
import { PipelineTelemetry } from '../../src/api/telemetry.ts';
import { graphOf } from '../../src/cli/run.ts';
import { loadConfigTexts } from '../../src/config/load.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';
import { Topology } from '../../src/core/topology.ts';
import { fullRegistry } from '../../src/registry.ts';

const registry = await fullRegistry();

const { values } = parseArgs({
  options: {
    transforms: { type: 'string', default: '48' },
    samples: { type: 'string', default: '500' },
    clients: { type: 'string', default: '50' },
  },
});
const transforms = Number(values.transforms);
const samples = Number(values.samples);
const clients = Number(values.clients);
const EVENTS = 20_000;

function yaml(): string {
  const lines = [
    'sources:',
    `  gen: { type: generator, rate: 100000, count: ${EVENTS}, batch_size: 100 }`,
    'transforms:',
  ];
  for (let i = 0; i < transforms; i++)
    lines.push(`  f${i}: { type: filter, inputs: [${i === 0 ? 'gen' : `f${i - 1}`}], condition: 'true' }`);
  lines.push('sinks:', `  out: { type: blackhole, inputs: [f${transforms - 1}] }`);
  return lines.join('\n');
}

const dataDir = `/tmp/fluxo-sampler-bench-${process.pid}`;
const loaded = loadConfigTexts(
  [{ file: 'sampler.yaml', text: `data_dir: ${dataDir}\napi: { enabled: false }\n${yaml()}` }],
  registry,
);
const logger = pino({ level: 'silent' });
// With the process metrics, as `fluxo run` has them: the registry the sampler walks is the real one.
const metrics = new PipelineMetrics();
const topology = new Topology(loaded.config, registry, { logger, metrics });
await topology.start();
await topology.sourcesFinished();

const telemetry = new PipelineTelemetry({
  registry: metrics.registry,
  graph: () => graphOf(topology),
  oldestUnsettled: () => topology.oldestUnsettled(),
  state: () => topology.state,
});

/** CPU µs (user + system) per sample() over `n` back-to-back samples. */
async function measure(n: number): Promise<number> {
  for (let i = 0; i < 20; i++) await telemetry.sample(); // warm-up: JIT, the latency window filled
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await telemetry.sample();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const alone = await measure(samples);
const snapshot = await telemetry.latest();
const jsonBytes = Buffer.byteLength(JSON.stringify(snapshot));

// SSE viewers: real sockets on a real API server, each reading and discarding what it gets.
const api = new ApiServer(
  '127.0.0.1:0',
  { state: () => topology.state, metrics: () => topology.metricsText(), describe: () => ({}), telemetry },
  logger,
);
const url = new URL(await api.start());
// The fan-out span: a listener subscribed before the viewers starts the clock, one subscribed after them stops it
// (subscribers run in order), so the CPU between is exactly the viewers' writes.
let fanOutStart: NodeJS.CpuUsage | undefined;
let fanOutUs = 0;
let fanOuts = 0;
telemetry.subscribe(() => {
  fanOutStart = process.cpuUsage();
});
const sockets: Socket[] = [];
let received = 0;
await Promise.all(
  Array.from(
    { length: clients },
    () =>
      new Promise<void>((resolve, reject) => {
        const s = connect(Number(url.port), url.hostname, () => {
          s.write(`GET /api/events HTTP/1.1\r\nhost: ${url.host}\r\naccept: text/event-stream\r\n\r\n`);
        });
        s.once('data', () => resolve());
        s.on('data', (d) => {
          received += d.length;
        });
        s.on('error', reject);
        sockets.push(s);
      }),
  ),
);
telemetry.subscribe(() => {
  if (!fanOutStart) return;
  const used = process.cpuUsage(fanOutStart);
  fanOutUs += used.user + used.system;
  fanOuts++;
});
// Far fewer samples than viewers would read at 1 Hz: let each socket drain between samples, as it would.
const withClientsUs = await (async () => {
  for (let i = 0; i < 5; i++) await telemetry.sample();
  fanOutUs = 0;
  fanOuts = 0;
  let cpu = 0;
  const n = Math.max(50, Math.round(samples / 5));
  for (let i = 0; i < n; i++) {
    const before = process.cpuUsage();
    await telemetry.sample();
    const used = process.cpuUsage(before);
    cpu += used.user + used.system;
    await new Promise((r) => setImmediate(r)); // the clients' reads run here, outside the measured span
  }
  return cpu / n;
})();

for (const s of sockets) s.destroy();
await api.stop();
await topology.stop(5000);

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
process.stdout.write(
  `${JSON.stringify({
    bench: 'sampler',
    components: transforms + 2,
    samples,
    us_per_sample: round(alone),
    core_percent_at_1hz: round(alone / 10_000, 3),
    snapshot_json_bytes: jsonBytes,
    sse_clients: clients,
    us_per_sample_with_clients: round(withClientsUs),
    fan_out_us_per_sample: round(fanOutUs / fanOuts),
    us_per_client_per_sample: round(fanOutUs / fanOuts / clients, 2),
    client_bytes_received: received,
    node: process.version,
  })}\n`,
);
