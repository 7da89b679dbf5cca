import type { Logger } from 'pino';
import { buffers } from '../../src/buffers/index.ts';
import { loadConfigTexts } from '../../src/config/load.ts';
import type { ComponentDefinition } from '../../src/core/component.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';
import { createRegistry, type PipelineConfig } from '../../src/core/pipeline-config.ts';
import { Topology } from '../../src/core/topology.ts';
import { filterTransform } from '../../src/transforms/filter.ts';
import { type ControlledSinkHandle, controlledSink, type ManualSourceHandle, manualSource } from './components.ts';
import { testLogger } from './context.ts';

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
