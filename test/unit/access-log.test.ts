import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACCESS_LOG_FORMATS, AccessLogGenerator, COMBINED_LOG_LINE, sequenceOf } from '../../src/codecs/access-log.ts';

const T0 = Date.UTC(2025, 2, 5, 14, 2, 17, 250);

function sample(format: (typeof ACCESS_LOG_FORMATS)[number], seed: number, n: number): string[] {
  const g = new AccessLogGenerator({ format, seed });
  return Array.from({ length: n }, (_, i) => g.line(i + 1, T0 + i * 10));
}

describe('AccessLogGenerator', () => {
  for (const format of ACCESS_LOG_FORMATS) {
    describe(format, () => {
      const lines = sample(format, 7, 20_000);

      it('is deterministic for a seed and differs between seeds', () => {
        assert.deepEqual(sample(format, 7, 500), lines.slice(0, 500));
        const other = sample(format, 8, 500);
        assert.ok(other.filter((l, i) => l === lines[i]).length < 10);
      });

      it('averages 200–300 bytes per line', () => {
        const total = lines.reduce((s, l) => s + Buffer.byteLength(l), 0);
        const average = total / lines.length;
        assert.ok(average >= 200 && average <= 300, `average ${average}`);
      });

      it('writes combined-format lines with the given time in UTC', () => {
        for (const line of lines) assert.match(line, COMBINED_LOG_LINE);
        assert.equal(COMBINED_LOG_LINE.exec(lines[0]!)![4], '05/Mar/2025:14:02:17 +0000');
        assert.ok(!lines.some((l) => l.includes('\n')));
      });

      it('embeds the sequence number in the query string of the request', () => {
        lines.forEach((line, i) => {
          assert.equal(sequenceOf(line), i + 1);
          const request = COMBINED_LOG_LINE.exec(line)![5]!;
          assert.match(request, new RegExp(`^[A-Z]+ /\\S*[?&]seq=${i + 1} HTTP/[12]\\.[01]$`));
        });
        const g = new AccessLogGenerator({ format, seed: 1 });
        assert.equal(sequenceOf(g.line(undefined, T0)), undefined);
      });

      it('mixes clients, methods and statuses like real traffic', () => {
        const parsed = lines.map((l) => COMBINED_LOG_LINE.exec(l)!);
        const share = (pred: (m: RegExpExecArray) => boolean) => parsed.filter(pred).length / parsed.length;
        assert.ok(share((m) => m[1]!.includes(':')) > 0.02, 'some IPv6 clients');
        assert.ok(share((m) => m[1]!.includes('.')) > 0.8, 'mostly IPv4 clients');
        assert.ok(share((m) => m[6] === '200') > 0.6, 'mostly 200');
        for (const status of ['304', '404', '500']) assert.ok(share((m) => m[6] === status) > 0, `some ${status}`);
        assert.ok(share((m) => m[5]!.startsWith('GET ')) > 0.7, 'mostly GET');
        assert.ok(share((m) => m[5]!.startsWith('POST ')) > 0.02, 'some POST');
        assert.ok(share((m) => m[8] === '-') > 0.2, 'some requests without referrer');
        assert.ok(new Set(parsed.map((m) => m[9])).size >= 8, 'several user agents');
        assert.ok(new Set(parsed.map((m) => m[1])).size > 500, 'many clients');
      });

      it('escapes quotes inside the user agent the way the server does', () => {
        const quoted = lines.filter((l) => l.includes('Galaxy Tab'));
        assert.ok(quoted.length > 0);
        const expected = format === 'apache_combined' ? '\\"Galaxy Tab S8\\"' : '\\x22Galaxy Tab S8\\x22';
        for (const l of quoted) assert.ok(l.includes(expected), l);
      });

      it('writes an empty body as the server does', () => {
        const parsed = lines.map((l) => COMBINED_LOG_LINE.exec(l)!);
        const bodies = parsed.filter((m) => m[6] === '304').map((m) => m[7]);
        assert.ok(bodies.length > 0);
        assert.deepEqual(new Set(bodies), new Set([format === 'apache_combined' ? '-' : '0']));
      });
    });
  }
});
