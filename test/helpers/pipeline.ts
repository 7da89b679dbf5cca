import type { Logger } from 'pino';
import { stringify } from 'yaml';
import { buffers } from '../../src/buffers/index.ts';
import { loadConfigTexts } from '../../src/config/load.ts';
import type { AckStatus } from '../../src/core/ack.ts';
import type { ComponentDefinition } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';
import { createRegistry, type PipelineConfig } from '../../src/core/pipeline-config.ts';
import { Topology } from '../../src/core/topology.ts';
import { filterTransform } from '../../src/transforms/filter.ts';
import { type ControlledSinkHandle, controlledSink, type ManualSourceHandle, manualSource } from './components.ts';
import { recordingLogger, testLogger } from './context.ts';

/**
 * A Topology built from YAML with the test components (`manual` source, `controlled` sink), the real filter,
 * and any `extra` real components the test needs (route, parse…); `logger` to read what it logs (see
 * recordingLogger).
 */
export function testPipeline(
  yaml: string,
  dataDir: string,
  extra: readonly ComponentDefinition[] = [],
  logger: Logger = testLogger(),
) {
  const sources = new Map<string, ManualSourceHandle>();
  const sinks = new Map<string, ControlledSinkHandle>();
  const registry = createRegistry([manualSource(sources), controlledSink(sinks), filterTransform, ...extra], buffers);
  const load = (text: string): PipelineConfig =>
    loadConfigTexts([{ file: 'test.yaml', text: `data_dir: ${dataDir}\napi: { enabled: false }\n${text}` }], registry)
      .config;
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  const topology = new Topology(load(yaml), registry, { logger, metrics });
  return {
    topology,
    metrics,
    load,
    source: (id: string) => sources.get(id)!,
    sink: (id: string) => sinks.get(id)!,
  };
}

/** Lets pending promise callbacks and timers of 0 ms run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits until `check()` is true, polling on the event loop; fails after `maxTurns` turns. */
export async function until(check: () => boolean, what: string, maxMs = 10_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * `manual` source `in` → the real sink `out` (`sink`: its whole config, `inputs` added), fast retries and no
 * linger unless `sink` says otherwise; started, stopped after the test. `emit` resolves when the pipeline
 * took the batch; `settled` collects each batch's acknowledgement; `lines` what the pipeline logged.
 */
export async function manualIntoSink(
  t: { after: (fn: () => unknown) => void },
  sink: Record<string, unknown>,
  definitions: readonly ComponentDefinition[],
  dataDir: string,
) {
  const { logger, lines } = recordingLogger('info');
  const config = {
    sources: { in: { type: 'manual' } },
    sinks: {
      out: {
        inputs: ['in'],
        retry: { initial_backoff: '20ms', max_backoff: '300ms' },
        batch: { timeout: '0ms' },
        ...sink,
      },
    },
  };
  const p = testPipeline(stringify(config), dataDir, definitions, logger);
  t.after(() => p.topology.stop(2000));
  await p.topology.start();
  const settled: AckStatus[] = [];
  const emit = (events: Event[]) =>
    p.source('in').ctx!.emit(events, {
      onSettled: (s) => {
        settled.push(s);
      },
    });
  return { ...p, lines, emit, settled };
}

/**
 * The real source `in` (`source`: its whole config) → a controlled sink `out` with fast retries, and a
 * controlled sink `dead` on the dead letter output; started, stopped after the test unless stop() stopped it.
 * `out()` is the sink's handle, `dead()` what was dead-lettered, `lines` what the pipeline logged.
 */
export async function sourceIntoControlledSinks(
  t: { after: (fn: () => unknown) => void },
  source: Record<string, unknown>,
  definitions: readonly ComponentDefinition[],
  dataDir: string,
) {
  const { logger, lines } = recordingLogger('info');
  const config = {
    sources: { in: source },
    sinks: {
      out: { type: 'controlled', inputs: ['in'], retry: { initial_backoff: '20ms', max_backoff: '200ms' } },
      dead: { type: 'controlled', inputs: ['dead_letter'] },
    },
  };
  const p = testPipeline(stringify(config), dataDir, definitions, logger);
  let stopped = false;
  t.after(() => (stopped ? undefined : p.topology.stop(2000)));
  await p.topology.start();
  return {
    ...p,
    lines,
    out: () => p.sink('out'),
    dead: () => p.sink('dead').written,
    stop: async (ms = 2000) => {
      stopped = true;
      return p.topology.stop(ms);
    },
  };
}
