import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTransform } from '../../src/transforms/parse.ts';
import { remapTransform } from '../../src/transforms/remap.ts';
import { routeTransform } from '../../src/transforms/route.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';

function pipeline(yaml: string, dataDir: string) {
  return testPipeline(yaml, dataDir, [routeTransform, parseTransform, remapTransform]);
}

const ROUTED = `
sources:
  in: { type: manual }
transforms:
  by: { type: route, inputs: [in], routes: { errors: 'status >= 500', odd: 'n % 2 == 1' } }
  big: { type: filter, inputs: [by.odd], condition: 'n > 2' }
sinks:
  errors: { type: controlled, inputs: [by.errors] }
  slow: { type: controlled, inputs: [big] }
  rest: { type: controlled, inputs: [by._unmatched] }
`;

describe('route acknowledgements', () => {
  it('an event routed to two sinks, one slow, is acknowledged only after both delivered it', async (t) => {
    const p = pipeline(ROUTED, tempDir(t));
    await p.topology.start();
    p.sink('slow').behaviour = 'stall';
    // n=3 (503) goes to both routes: errors, and odd → filter big → slow.
    await p.source('in').emit([{ n: 3, status: 503 }]);
    await until(() => p.sink('errors').written.length === 1, 'the fast sink delivered');
    await p.sink('slow').waitForAttempts(1);
    await tick();
    assert.deepEqual(p.source('in').acks, [], 'not acknowledged while the slow sink holds the event');
    p.sink('slow').release();
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    await tick();
    assert.deepEqual(p.source('in').acks, ['delivered'], 'exactly once');
    assert.deepEqual(p.sink('errors').written, [{ n: 3, status: 503 }]);
    assert.deepEqual(p.sink('slow').written, [{ n: 3, status: 503 }]);
    assert.equal(
      p.sink('errors').written[0],
      p.sink('slow').written[0],
      'one event object, shared, never copied or changed',
    );
    await p.topology.stop(1000);
  });

  it('a batch split over every route, a filter and _unmatched settles once every branch delivered', async (t) => {
    const p = pipeline(ROUTED, tempDir(t));
    await p.topology.start();
    p.sink('rest').behaviour = 'stall';
    const batch = [
      { n: 1, status: 200 }, // odd, dropped by the filter
      { n: 2, status: 200 }, // unmatched → rest (stalled)
      { n: 3, status: 200 }, // odd → slow
      { n: 4, status: 500 }, // errors
    ];
    await p.source('in').emit(batch);
    await until(
      () => p.sink('errors').written.length === 1 && p.sink('slow').written.length === 1,
      'two branches delivered',
    );
    await tick();
    assert.deepEqual(p.source('in').acks, [], 'the unmatched branch still holds its event');
    p.sink('rest').release();
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.deepEqual(
      [p.sink('errors'), p.sink('slow'), p.sink('rest')].map((s) => s.written.map((e) => e.n)),
      [[4], [3], [2]],
    );
    const text = await p.metrics.registry.getSingleMetricAsString('fluxo_component_sent_events_total');
    assert.match(text, /component_id="by".*output="errors"\} 1/);
    assert.match(text, /component_id="by".*output="_unmatched"\} 1/);
    await p.topology.stop(1000);
  });

  it('a branch never delivered before shutdown makes the acknowledgement fail, although the other delivered', async (t) => {
    const p = pipeline(ROUTED, tempDir(t));
    await p.topology.start();
    p.sink('slow').behaviour = 'stall';
    await p.source('in').emit([{ n: 5, status: 502 }]);
    await until(() => p.sink('errors').written.length === 1, 'the fast sink delivered');
    await p.topology.stop(50);
    await until(() => p.source('in').acks.length > 0, 'settled');
    assert.deepEqual(p.source('in').acks, ['failed'], 'the source must not acknowledge upstream');
  });

  it('unmatched events nobody reads, and unmatched: false, settle at once', async (t) => {
    const p = pipeline(
      `
sources: { in: { type: manual } }
transforms:
  keep_none: { type: route, inputs: [in], routes: { big: 'n > 100' } }
  drop_rest: { type: route, inputs: [in], routes: { big: 'n > 100' }, unmatched: false }
sinks:
  big: { type: controlled, inputs: [keep_none.big, drop_rest.big] }
`,
      tempDir(t),
    );
    await p.topology.start();
    await p.source('in').emit([{ n: 1 }, { n: 2 }]);
    assert.deepEqual(p.source('in').acks, ['delivered']);
    await p.topology.stop(1000);
  });

  it('parse dead-letters what it cannot read; the source is acknowledged once the dead letter sink delivered it', async (t) => {
    const p = pipeline(
      `
sources: { in: { type: manual } }
transforms:
  access: { type: parse, inputs: [in], format: apache_combined, on_error: dead_letter }
  tidy: { type: remap, inputs: [access], steps: [{ delete: [message] }] }
sinks:
  master: { type: controlled, inputs: [tidy] }
  rejects: { type: controlled, inputs: [dead_letter] }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('rejects').behaviour = 'stall';
    await p
      .source('in')
      .emit([
        { message: '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"' },
        { message: 'not an access line' },
      ]);
    await until(() => p.sink('master').written.length === 1, 'the parsed line delivered');
    await p.sink('rejects').waitForAttempts(1);
    await tick();
    assert.deepEqual(p.source('in').acks, []);
    p.sink('rejects').release();
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.equal(p.sink('master').written[0]!.status, 200);
    assert.equal(p.sink('master').written[0]!.message, undefined);
    const rejected = p.sink('rejects').written[0]!;
    assert.equal(rejected.message, 'not an access line');
    assert.match((rejected._dead_letter as { reason: string }).reason, /^not an access log line/);
    assert.equal((rejected._dead_letter as { component_id: string }).component_id, 'access');
    await p.topology.stop(1000);
  });
});
