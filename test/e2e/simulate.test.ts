import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { tempDir } from '../helpers/context.ts';
import { FluxoProcess } from '../helpers/fluxo-process.ts';

const BIN = new URL('../../bin/fluxo.js', import.meta.url).pathname;
const exec = promisify(execFile);

/** The parts of `fluxo simulate --json`'s report the test reads. */
interface Report {
  generated: number;
  sent: number;
  acknowledged: number | null;
  latency_kind: string;
  latency_ms: { p50: number; p99: number };
  rate_achieved: number;
  verify: {
    expected: number;
    found: number;
    missing: number;
    missing_sample: string[];
    duplicated: number;
    duplicated_sample: number[];
  };
}

/** Runs `fluxo simulate … --json`; resolves with the exit code and the parsed report. */
async function simulate(args: string[]): Promise<{ code: number; report: Report; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, 'simulate', ...args, '--json'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, report: JSON.parse(stdout), stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    if (typeof e.code !== 'number' || !e.stdout) throw error;
    return { code: e.code, report: JSON.parse(e.stdout), stderr: e.stderr };
  }
}

/**
 * The issue asks for 300 servers at 10,000 events/s for 30 s per protocol; this test runs each protocol for
 * 5 s (50,000 lines) to keep the suite fast on a shared 2-core machine. `fluxo simulate --duration 30s` is the
 * full run (see docs/benchmarks.md).
 */
const DURATION = '5s';

describe('fluxo simulate → fluxo run (syslog, http, tcp sources → file sink)', { timeout: 120_000 }, () => {
  it('300 servers at 10,000 events/s in each protocol: --verify finds zero missing', async (t) => {
    const dir = tempDir(t);
    const master = join(dir, 'master');
    writeFileSync(
      join(dir, 'fluxo.yaml'),
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  syslog_tcp: { type: syslog, mode: tcp, address: 127.0.0.1:0 }
  web_http: { type: http, address: 127.0.0.1:0 }
  tcp_lines: { type: socket, mode: tcp, address: 127.0.0.1:0 }
sinks:
  master:
    type: file
    inputs: [syslog_tcp, web_http, tcp_lines]
    path: "${master}/dt=%Y-%m-%d/hour=%H/part.ndjson.gz"
    idle_timeout: 1s
`,
    );
    const fluxo = new FluxoProcess(['run', '-c', join(dir, 'fluxo.yaml')]);
    t.after(() => fluxo.stop('SIGKILL'));
    const ports = {
      syslog: await fluxo.port('syslog_tcp'),
      http: await fluxo.port('web_http'),
      tcp: await fluxo.port('tcp_lines'),
    };
    for (const [protocol, port] of Object.entries(ports)) {
      const { code, report, stderr } = await simulate([
        '--target',
        `127.0.0.1:${port}`,
        '--protocol',
        protocol,
        '--servers',
        '300',
        '--rate',
        '10000',
        '--duration',
        DURATION,
        '--verify',
        master,
        '--verify-timeout',
        '30s',
      ]);
      const context = `${protocol}: ${JSON.stringify(report)}\n${stderr}\n${fluxo.stderr}`;
      assert.equal(code, 0, context);
      assert.equal(report.generated, 50_000, context);
      assert.equal(report.sent, 50_000, context);
      assert.equal(report.verify.expected, 50_000, context);
      assert.equal(report.verify.missing, 0, context);
      assert.equal(report.verify.duplicated, 0, context);
      assert.equal(report.verify.found, 50_000, context);
      if (protocol === 'http') {
        assert.equal(report.acknowledged, 50_000, context);
        assert.equal(report.latency_kind, 'send_to_acknowledgement');
      } else {
        assert.equal(report.acknowledged, null, `${protocol} has no acknowledgement`);
        assert.equal(report.latency_kind, 'send_side');
      }
      assert.ok(report.latency_ms.p50 <= report.latency_ms.p99, context);
      assert.ok(report.rate_achieved > 0);
    }
    assert.equal(await fluxo.stop(), 0);
  });

  it('--verify alone reports missing (exit 1) and duplicated lines of a given run', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out', 'dt=2025-03-05');
    mkdirSync(out, { recursive: true });
    const line = (run: string, n: number) =>
      `${JSON.stringify({ message: `203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET /cart?run=${run}&seq=${n} HTTP/1.1" 200 512 "-" "curl/8.5.0"` })}\n`;
    let text = '';
    for (let n = 1; n <= 100; n++) if (n !== 17 && (n < 40 || n > 49)) text += line('abc', n);
    text += line('abc', 5) + line('other', 17); // a duplicate, and another run's line that must not count
    writeFileSync(join(out, 'part-1.ndjson.gz'), gzipSync(text));
    writeFileSync(join(out, '.part-2.ndjson.abc.inprogress'), line('abc', 17)); // not visible yet: skipped

    const missing = await simulate([
      '--verify',
      join(dir, 'out'),
      '--run-id',
      'abc',
      '--expect',
      '100',
      '--verify-timeout',
      '0s',
    ]);
    assert.equal(missing.code, 1);
    assert.deepEqual(missing.report.verify.missing_sample, ['17', '40-49']);
    assert.equal(missing.report.verify.missing, 11);
    assert.equal(missing.report.verify.duplicated, 1);
    assert.deepEqual(missing.report.verify.duplicated_sample, [5]);
    assert.equal(missing.report.verify.found, 90);

    const complete = await simulate(['--verify', join(dir, 'out'), '--run-id', 'abc', '--expect', '16']);
    assert.equal(complete.code, 0);
    assert.equal(complete.report.verify.missing, 0);
  });
});
