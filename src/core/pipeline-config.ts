import type { ComponentDefinition, SinkDefinition, SourceDefinition, TransformDefinition } from './component.ts';
import type { RetryPolicy } from './retry.ts';
import type { AnyBufferDefinition } from './sink/buffer.ts';

/** The id transforms and sinks name in `inputs` to receive dead-lettered events. */
export const DEAD_LETTER_ID = 'dead_letter';

export interface ComponentSpec {
  readonly id: string;
  readonly type: string;
  /** The component's own options, validated, with defaults applied. */
  readonly options: Record<string, unknown>;
  /** The raw config of the component as written (after interpolation), to tell changed from unchanged on reload. */
  readonly fingerprint: string;
}

export interface TransformSpec extends ComponentSpec {
  readonly inputs: readonly string[];
}

export interface MemoryBufferSpec {
  readonly type: 'memory';
  readonly maxEvents: number;
  readonly maxBytes: number;
  readonly whenFull: 'block' | 'drop_newest';
}

export interface DiskBufferSpec {
  readonly type: 'disk';
  readonly maxSize: number;
  readonly whenFull: 'block' | 'drop_newest';
  readonly sync: 'always' | 'interval';
  readonly syncIntervalMs: number;
  readonly commitIntervalMs: number;
  readonly writeDelayMs: number;
  readonly maxSegmentSize: number | undefined;
}

export type BufferSpec = MemoryBufferSpec | DiskBufferSpec;

export interface SinkSpec extends TransformSpec {
  readonly buffer: BufferSpec;
  readonly batchMaxEvents: number;
  /** Most bytes (as received, or estimated) per write; a single larger batch is split. */
  readonly batchMaxBytes: number;
  /** How long one attempt may take before it is aborted and retried; 0: no limit. */
  readonly timeoutMs: number;
  /** Ask the destination once at start whether it is usable (where the sink can). */
  readonly healthcheck: boolean;
  /** How long a write waits for more events before it goes out with fewer than batchMaxEvents; 0: never. */
  readonly batchTimeoutMs: number;
  readonly concurrency: number;
  readonly retry: RetryPolicy;
}

/** A validated configuration, as the runtime takes it. */
export interface PipelineConfig {
  readonly dataDir: string;
  readonly api: {
    readonly enabled: boolean;
    readonly address: string;
    /** api.auth: what every request but GET /health must carry. */
    readonly auth?: {
      readonly strategy: 'bearer' | 'basic';
      readonly token?: string;
      readonly user?: string;
      readonly password?: string;
    };
  };
  readonly shutdownTimeoutMs: number;
  readonly sources: ReadonlyMap<string, ComponentSpec>;
  readonly transforms: ReadonlyMap<string, TransformSpec>;
  readonly sinks: ReadonlyMap<string, SinkSpec>;
}

/** The component types the runtime can build, by kind and type name. */
export interface ComponentRegistry {
  readonly sources: ReadonlyMap<string, SourceDefinition>;
  readonly transforms: ReadonlyMap<string, TransformDefinition>;
  readonly sinks: ReadonlyMap<string, SinkDefinition>;
  /** The kinds of sink buffer (`buffer: { type }`). */
  readonly buffers: ReadonlyMap<string, AnyBufferDefinition>;
  /**
   * Every type that can be named, loaded or not, for the config's messages ("available: …"). Absent: the maps'
   * keys. A registry whose components load on demand (src/registry.ts) knows more names than it holds.
   */
  readonly known?: { readonly [S in ComponentSection]: readonly string[] };
  /**
   * Loads the components of the types named (those it knows; others are left to the config's unknown-type
   * error), before the config that names them is validated (`fluxo run`, a reload, `fluxo validate`); absent
   * when every component is already in the maps.
   */
  readonly loadTypes?: (named: { readonly [S in ComponentSection]?: readonly string[] }) => Promise<void>;
  /** Loads every component (`fluxo schema`). */
  readonly loadAll?: () => Promise<void>;
}

export type ComponentSection = 'sources' | 'transforms' | 'sinks';

/** The type names a registry can give, loaded or not. */
export function knownTypes(registry: ComponentRegistry, section: ComponentSection): readonly string[] {
  return registry.known?.[section] ?? [...registry[section].keys()];
}

export function createRegistry(
  definitions: readonly ComponentDefinition[],
  bufferDefinitions: readonly AnyBufferDefinition[] = [],
): ComponentRegistry {
  const sources = new Map<string, SourceDefinition>();
  const transforms = new Map<string, TransformDefinition>();
  const sinks = new Map<string, SinkDefinition>();
  const buffers = new Map<string, AnyBufferDefinition>();
  for (const b of bufferDefinitions) {
    if (buffers.has(b.type)) throw new Error(`two buffer definitions of type "${b.type}"`);
    buffers.set(b.type, b);
  }
  for (const d of definitions) {
    const map = (d.kind === 'source' ? sources : d.kind === 'transform' ? transforms : sinks) as Map<string, typeof d>;
    if (map.has(d.type)) throw new Error(`two ${d.kind} definitions of type "${d.type}"`);
    map.set(d.type, d);
  }
  return { sources, transforms, sinks, buffers };
}
