import { buffers } from './buffers/index.ts';
import type { ComponentDefinition, SinkDefinition, SourceDefinition, TransformDefinition } from './core/component.ts';
import { type ComponentRegistry, type ComponentSection, createRegistry } from './core/pipeline-config.ts';

/**
 * Every component type Fluxo knows, each with the import of its code. Adding a component is one line here.
 * `fluxo run` loads only what its config names (componentRegistry): the code and the option schemas of ~30
 * components cost ~0.9 s of CPU and ~50 MiB at start when all are loaded, an agent that tails files needs few.
 */
const CATALOGUE: { readonly [S in ComponentSection]: Readonly<Record<string, () => Promise<ComponentDefinition>>> } = {
  sources: {
    socket: async () => (await import('./sources/socket.ts')).socketSource,
    stdin: async () => (await import('./sources/stdin.ts')).stdinSource,
    syslog: async () => (await import('./sources/syslog.ts')).syslogSource,
    http: async () => (await import('./sources/http.ts')).httpSource,
    generator: async () => (await import('./sources/generator.ts')).generatorSource,
    forward: async () => (await import('./sources/forward.ts')).forwardSource,
    otlp: async () => (await import('./sources/otlp.ts')).otlpSource,
    file: async () => (await import('./sources/file.ts')).fileSource,
    relp: async () => (await import('./sources/relp.ts')).relpSource,
    nats: async () => (await import('./sources/nats.ts')).natsSource,
    redis: async () => (await import('./sources/redis.ts')).redisSource,
    kafka: async () => (await import('./sources/kafka.ts')).kafkaSource,
  },
  transforms: {
    filter: async () => (await import('./transforms/filter.ts')).filterTransform,
    parse: async () => (await import('./transforms/parse.ts')).parseTransform,
    remap: async () => (await import('./transforms/remap.ts')).remapTransform,
    route: async () => (await import('./transforms/route.ts')).routeTransform,
    sample: async () => (await import('./transforms/sample.ts')).sampleTransform,
    dedupe: async () => (await import('./transforms/dedupe.ts')).dedupeTransform,
    throttle: async () => (await import('./transforms/throttle.ts')).throttleTransform,
  },
  sinks: {
    console: async () => (await import('./sinks/console.ts')).consoleSink,
    blackhole: async () => (await import('./sinks/blackhole.ts')).blackholeSink,
    clickhouse: async () => (await import('./sinks/clickhouse.ts')).clickhouseSink,
    file: async () => (await import('./sinks/file.ts')).fileSink,
    forward: async () => (await import('./sinks/forward.ts')).forwardSink,
    http: async () => (await import('./sinks/http.ts')).httpSink,
    kafka: async () => (await import('./sinks/kafka.ts')).kafkaSink,
    nats: async () => (await import('./sinks/nats.ts')).natsSink,
    postgres: async () => (await import('./sinks/postgres.ts')).postgresSink,
    redis: async () => (await import('./sinks/redis.ts')).redisSink,
    // The file sink's staging with an S3 committer (components never import each other).
    s3: async () => {
      const [{ s3Sink }, file] = await Promise.all([import('./sinks/s3.ts'), import('./sinks/file.ts')]);
      return s3Sink({ shape: file.fileSinkOptionsShape, schema: file.fileSinkOptions, build: file.stagedFileSink });
    },
  },
};

const SECTIONS: readonly ComponentSection[] = ['sources', 'transforms', 'sinks'];

/**
 * The registry the CLI runs with: buffers are in it from the start, components are added by loadTypes() (the
 * types its config files name) or loadAll(). Types the config does not name are never imported.
 */
export function componentRegistry(): ComponentRegistry {
  const maps = {
    sources: new Map<string, SourceDefinition>(),
    transforms: new Map<string, TransformDefinition>(),
    sinks: new Map<string, SinkDefinition>(),
  };
  const load = async (section: ComponentSection, types: Iterable<string>) => {
    const map = maps[section] as Map<string, ComponentDefinition>;
    const wanted = [...new Set(types)].filter((t) => !map.has(t) && Object.hasOwn(CATALOGUE[section], t));
    const defs = await Promise.all(wanted.map((t) => CATALOGUE[section][t]!()));
    for (const d of defs) map.set(d.type, d);
  };
  const loadAll = async () => {
    for (const s of SECTIONS) await load(s, Object.keys(CATALOGUE[s]));
  };
  return {
    ...maps,
    buffers: createRegistry([], buffers).buffers,
    known: {
      sources: Object.keys(CATALOGUE.sources),
      transforms: Object.keys(CATALOGUE.transforms),
      sinks: Object.keys(CATALOGUE.sinks),
    },
    loadTypes: async (named) => {
      for (const s of SECTIONS) await load(s, named[s] ?? []);
    },
    loadAll,
  };
}

/** A registry with every component loaded: for the docs, `fluxo schema` and tests. */
export async function fullRegistry(): Promise<ComponentRegistry> {
  const registry = componentRegistry();
  await registry.loadAll!();
  return registry;
}
