import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { syslogSource } from '../../src/sources/syslog.ts';
import { recordingSourceContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { startRsyslogd } from '../helpers/rsyslog.ts';

async function startSource(t: TestContext, id: string) {
  const rec = recordingSourceContext(id, '/nonexistent', 'syslog');
  const source = syslogSource.build(syslogSource.options.parse({ address: '127.0.0.1:0' }), rec.ctx);
  await source.start();
  t.after(() => source.stop());
  const endpoint = source.endpoint!()!;
  return { rec, port: Number(endpoint.slice(endpoint.lastIndexOf(':') + 1)) };
}

/**
 * A private rsyslogd (its own config, pid file and work directory in a temp dir; no imuxsock, so it never
 * touches the system log) tails a file with imfile and forwards each line with omfwd over TCP twice: RFC 5424
 * octet-counted, as `TCP_Framing="octet-counted"` senders do, and rsyslog's default traditional (RFC 3164)
 * format, one message per line.
 */
describe('rsyslog → syslog source', { timeout: 60_000 }, () => {
  it('every line rsyslog forwards arrives once, in order, with its syslog fields, in both framings', async (t) => {
    const rsyslogd = requireProgram(t, 'rsyslogd', 'rsyslog');
    if (!rsyslogd) return;
    const dir = tempDir(t);
    const octet = await startSource(t, 'octet');
    const lines = await startSource(t, 'lines');
    const input = join(dir, 'access.log');
    const total = 2000;
    writeFileSync(input, '');
    mkdirSync(join(dir, 'work'));
    writeFileSync(
      join(dir, 'rsyslog.conf'),
      `
global(workDirectory="${dir}/work" localHostname="web-042" net.enableDNS="off")
module(load="imfile")
input(type="imfile" File="${input}" Tag="webapp:" Facility="local3" Severity="info")
if $programname == "webapp" then {
  action(type="omfwd" target="127.0.0.1" port="${octet.port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="${lines.port}" protocol="tcp")
}
`,
    );
    const rsyslog = startRsyslogd(t, rsyslogd, dir);
    let text = '';
    for (let i = 1; i <= total; i++) {
      text += `10.0.0.${i % 250} - - "GET /item?seq=${i} HTTP/1.1" 200 ${i * 7}\n`;
      if (i % 500 === 0) {
        appendFileSync(input, text);
        text = '';
      }
    }
    const exitedEarly = rsyslog.exited.then(() => {
      throw new Error(`rsyslogd exited early:\n${rsyslog.output()}`);
    });
    await Promise.race([Promise.all([octet.rec.waitForEvents(total), lines.rec.waitForEvents(total)]), exitedEarly]);

    const started = Date.now();
    for (const [name, rec] of [
      ['octet-counted RFC 5424', octet.rec],
      ['newline RFC 3164', lines.rec],
    ] as const) {
      const events = rec.events();
      assert.equal(events.length, total, `${name}: ${events.length} events\n${rsyslog.output()}`);
      events.forEach((e, i) => {
        const n = i + 1;
        assert.equal(e.message, `10.0.0.${n % 250} - - "GET /item?seq=${n} HTTP/1.1" 200 ${n * 7}`, name);
        assert.equal(e.hostname, 'web-042', name);
        assert.equal(e.appname, 'webapp', name);
        assert.equal(e.facility, 'local3', name);
        assert.equal(e.severity, 'info', name);
        assert.equal(e.host, '127.0.0.1', name);
        assert.equal(e.source_type, 'syslog', name);
        assert.ok(Math.abs(Date.parse(e.timestamp as string) - started) < 120_000, `${name}: ${e.timestamp}`);
      });
    }
    // RFC 5424 carries milliseconds; the BSD format only seconds
    assert.match(octet.rec.events()[0]!.timestamp as string, /\.\d{3}Z$/);
    assert.match(lines.rec.events()[0]!.timestamp as string, /:\d{2}\.000Z$/);
  });
});
