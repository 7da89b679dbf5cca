import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigTexts } from '../../src/config/load.ts';
import type { Event } from '../../src/core/event.ts';
import { fullRegistry } from '../../src/registry.ts';
import { routeTransform, UNMATCHED_OUTPUT } from '../../src/transforms/route.ts';
import { componentContext } from '../helpers/context.ts';

const registry = await fullRegistry();

function route(options: Record<string, unknown>, events: Event[]) {
  const ctx = componentContext('by_status', '/x', 'transform', 'route');
  const parsed = routeTransform.options.parse(options);
  const t = routeTransform.build(parsed, ctx);
  const outputs = new Map<string, Event[]>();
  t.process(events, {
    push: (e, output = '') => outputs.set(output, [...(outputs.get(output) ?? []), ...e]),
    deadLetter: () => assert.fail('route never dead-letters'),
  });
  return {
    outputs,
    transform: t,
    declared: routeTransform.outputs!(parsed),
    metrics: () => ctx.pipelineMetrics.registry.metrics(),
  };
}

const events: Event[] = [
  { status: 503, agent: 'Googlebot/2.1' },
  { status: 200, agent: 'curl' },
  { status: 404, agent: 'bingbot' },
  { status: 500 },
];

describe('route', () => {
  it('sends each event to every route whose condition is true, the rest to _unmatched', () => {
    const { outputs, transform, declared } = route(
      { routes: { errors: 'int(status) >= 500', bots: 'agent.lowerAscii().contains("bot")' } },
      events,
    );
    assert.deepEqual(declared, ['errors', 'bots', UNMATCHED_OUTPUT]);
    assert.deepEqual(transform.outputs, declared);
    assert.deepEqual(outputs.get('errors'), [events[0], events[3]]);
    assert.deepEqual(outputs.get('bots'), [events[0], events[2]]);
    assert.deepEqual(outputs.get(UNMATCHED_OUTPUT), [events[1]]);
    assert.equal(
      outputs.get('errors')![0],
      events[0],
      'the same event object goes to both routes (events are immutable)',
    );
    assert.equal(outputs.has(''), false, 'nothing on the default output');
  });

  it('a condition that cannot be evaluated does not match and is counted', async () => {
    const { outputs, metrics } = route({ routes: { bots: 'agent.contains("bot")' } }, events);
    assert.deepEqual(outputs.get('bots'), [events[0], events[2]]);
    assert.deepEqual(outputs.get(UNMATCHED_OUTPUT), [events[1], events[3]]);
    assert.match(await metrics(), /error_type="condition_failed"\} 1/);
  });

  it('unmatched: false drops (and counts) what no route takes', async () => {
    const { outputs, declared, metrics } = route({ routes: { ok: 'status == 200' }, unmatched: false }, events);
    assert.deepEqual(declared, ['ok']);
    assert.deepEqual([...outputs.keys()], ['ok']);
    assert.match(await metrics(), /fluxo_component_discarded_events_total\{[^}]*reason="unmatched"\} 3/);
  });

  it('downstream components name route outputs; validation knows them', () => {
    const load = (sinkInputs: string, routes = '{ errors: "status >= 500" }') =>
      loadConfigTexts(
        [
          {
            file: 'c.yaml',
            text: `api: { enabled: false }\nsources:\n  in: { type: stdin }\ntransforms:\n  r: { type: route, inputs: [in], routes: ${routes} }\nsinks:\n  out: { type: blackhole, inputs: [${sinkInputs}] }\n`,
          },
        ],
        registry,
      );
    assert.doesNotThrow(() => load('r.errors, r._unmatched'));
    assert.throws(() => load('r.eror'), /r has no output "eror" \(outputs: errors, _unmatched\)/);
    assert.throws(
      () => load('r.errors', '{ _unmatched: "true" }'),
      /"_unmatched" is the output of events no route matched/,
    );
    assert.throws(() => load('r.errors', '{ "bad name": "true" }'), /route name "bad name": use letters/);
    assert.throws(() => load('r.errors', '{}'), /at least one route/);
  });
});
