import type { Logger } from 'pino';
import { Acknowledgement } from '../ack.ts';
import type { ComponentContext, ComponentKind, EmitOptions, Sink, SourceContext } from '../component.ts';
import { FluxoError } from '../errors.ts';
import type { Event } from '../event.ts';
import type { PipelineMetrics } from '../metrics.ts';
import type { ComponentRegistry, ComponentSpec, PipelineConfig, SinkSpec, TransformSpec } from '../pipeline-config.ts';
import type { SinkBuffer } from '../sink/buffer.ts';
import { SinkRunner, type SinkRunnerOptions } from '../sink/runner.ts';
import type { DeadLetterOutput } from './dead-letter.ts';
import { SinkNode, SourceNode, TransformNode } from './nodes.ts';
import { Outlet } from './outlet.ts';

/** What building components needs from the topology that will run them. */
export interface BuildEnvironment {
  readonly registry: ComponentRegistry;
  readonly logger: Logger;
  readonly metrics: PipelineMetrics;
  readonly deadLetter: DeadLetterOutput;
  /** Where a source's `emit` goes: the running topology decides whether it still takes batches. */
  emit(node: SourceNode, events: Event[], options: EmitOptions | undefined): Promise<void>;
}

export interface BuiltNodes {
  readonly sources: SourceNode[];
  readonly transforms: TransformNode[];
  readonly sinks: SinkNode[];
}

/**
 * Builds the components of `config` that `include` names, unwired and not started: sinks (with their buffer and
 * runner), transforms, sources. A component that cannot be built throws before anything runs.
 */
export function buildNodes(
  config: PipelineConfig,
  include: (id: string) => boolean,
  env: BuildEnvironment,
): BuiltNodes {
  const built: BuiltNodes = { sources: [], transforms: [], sinks: [] };
  for (const spec of config.sinks.values()) if (include(spec.id)) built.sinks.push(buildSink(config, spec, env));
  for (const spec of config.transforms.values()) {
    if (include(spec.id)) built.transforms.push(buildTransform(config, spec, env));
  }
  for (const spec of config.sources.values()) if (include(spec.id)) built.sources.push(buildSource(config, spec, env));
  return built;
}

function componentContext(
  config: PipelineConfig,
  env: BuildEnvironment,
  spec: ComponentSpec,
  kind: ComponentKind,
): ComponentContext {
  return {
    id: spec.id,
    dataDir: config.dataDir,
    logger: env.logger.child({ component: spec.id, component_type: spec.type }),
    metrics: env.metrics.forComponent(spec.id, kind, spec.type),
  };
}

function buildSink(config: PipelineConfig, spec: SinkSpec, env: BuildEnvironment): SinkNode {
  const def = env.registry.sinks.get(spec.type)!;
  const ctx = componentContext(config, env, spec, 'sink');
  const sink = def.build(spec.options as never, ctx);
  const buffer = registeredBuffer(spec, ctx, env);
  const runner = createSinkRunner(spec, sink, buffer, ctx, env.deadLetter);
  return new SinkNode(spec, sink, runner, buffer, ctx.metrics);
}

/** The one place that constructs a sink runner: its batching, retry and concurrency come from the sink's spec. */
function createSinkRunner(
  spec: SinkSpec,
  sink: Sink,
  buffer: SinkBuffer,
  ctx: ComponentContext,
  deadLetter: DeadLetterOutput,
): SinkRunner {
  const options: SinkRunnerOptions = spec;
  return new SinkRunner(spec.id, sink, buffer, options, ctx.metrics, ctx.logger, (events, reason, ack, bytes) =>
    deadLetter.send(spec.id, ctx.metrics, events, reason, ack, bytes),
  );
}

function registeredBuffer(spec: SinkSpec, context: ComponentContext, env: BuildEnvironment): SinkBuffer {
  const def = env.registry.buffers.get(spec.buffer.type);
  if (!def) {
    throw new FluxoError(
      'FLUXO_BUFFER_UNKNOWN',
      `sink ${spec.id}: no buffer of type ${spec.buffer.type} is registered`,
    );
  }
  return def.create(spec.buffer as never, { ...context, registry: env.metrics.registry });
}

function buildTransform(config: PipelineConfig, spec: TransformSpec, env: BuildEnvironment): TransformNode {
  const def = env.registry.transforms.get(spec.type)!;
  const ctx = componentContext(config, env, spec, 'transform');
  return new TransformNode(spec, def.build(spec.options as never, ctx), ctx.metrics, env.deadLetter);
}

function buildSource(config: PipelineConfig, spec: ComponentSpec, env: BuildEnvironment): SourceNode {
  const def = env.registry.sources.get(spec.type)!;
  const base = componentContext(config, env, spec, 'source');
  const holder: { node?: SourceNode } = {};
  const ctx: SourceContext = {
    ...base,
    emit: (events, options) => env.emit(holder.node!, events, options),
    deadLetter: (events, reason) => {
      const ack = new Acknowledgement(undefined);
      env.deadLetter.send(spec.id, base.metrics, events, reason, ack, 0);
    },
  };
  const node = new SourceNode(spec, def.build(spec.options as never, ctx), new Outlet(base.metrics), base.metrics);
  holder.node = node;
  return node;
}
