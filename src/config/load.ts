import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Document, isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import type { ComponentDefinition } from '../core/component.ts';
import type { ErrorCode } from '../core/error-codes.ts';
import {
  type ComponentRegistry,
  type ComponentSpec,
  DEAD_LETTER_ID,
  knownTypes,
  type PipelineConfig,
  type SinkSpec,
  type TransformSpec,
} from '../core/pipeline-config.ts';
import { ConfigError, type ConfigProblem, describeFound, didYouMean } from './errors.ts';
import { checkGraph, type GraphNode } from './graph.ts';
import { interpolateText } from './interpolate.ts';
import { findListenerConflicts, type Listener, listenersOf } from './listeners.ts';
import { componentSchema, globalOptions, SINK_COMMON_KEYS } from './schema.ts';
import { objectKeysAt } from './zod-walk.ts';

type Path = (string | number)[];
type Kind = 'source' | 'transform' | 'sink';
const SECTIONS = { sources: 'source', transforms: 'transform', sinks: 'sink' } as const;
const TOP_LEVEL_KEYS = ['data_dir', 'api', 'shutdown_timeout', 'sources', 'transforms', 'sinks', 'tests'];
const ID_PATTERN = /^[A-Za-z0-9_-]+$/;

interface ConfigFile {
  readonly file: string;
  readonly doc: Document;
  readonly lines: LineCounter;
}

interface RawComponent {
  readonly id: string;
  readonly kind: Kind;
  readonly section: keyof typeof SECTIONS;
  readonly raw: Record<string, unknown>;
  readonly origin: ConfigFile;
}

export interface LoadedConfig {
  readonly config: PipelineConfig;
  /** Problems that do not stop the pipeline, e.g. a source nobody reads. */
  readonly warnings: readonly ConfigProblem[];
  /** The `tests:` sections as written (after ${VAR} interpolation), per file, for `fluxo test`; `fluxo run` ignores them. */
  readonly tests: readonly { readonly file: string; readonly value: unknown }[];
}

export interface ConfigText {
  /** Shown in messages; also how relative includes would resolve. */
  readonly file: string;
  readonly text: string;
}

/** The texts of config files; throws ConfigError naming each file that cannot be read. */
export function readConfigFiles(paths: readonly string[]): ConfigText[] {
  const texts: ConfigText[] = [];
  const problems: ConfigProblem[] = [];
  for (const file of paths) {
    try {
      texts.push({ file, text: readFileSync(file, 'utf8') });
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
      problems.push({ code: 'FLUXO_CONFIG_UNREADABLE', file, line: 0, column: 0, path: '', message: reason });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return texts;
}

/** Reads, merges and validates config files; throws ConfigError listing every problem found. */
export function loadConfigFiles(
  paths: readonly string[],
  registry: ComponentRegistry,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  return loadConfigTexts(readConfigFiles(paths), registry, env);
}

/** Same as loadConfigFiles, from texts already in memory (tests, the embedded default config). */
export function loadConfigTexts(
  texts: readonly ConfigText[],
  registry: ComponentRegistry,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  return new ConfigLoader(registry).load(parseConfigTexts(texts, env));
}

/**
 * Same as loadConfigFiles, with a registry whose components load on demand (src/registry.ts): each file is
 * read and parsed once, the types it names (after ${VAR} interpolation) are loaded, then it is validated.
 * A component whose code fails to load throws a plain Error saying which.
 */
export async function loadConfigWithComponents(
  paths: readonly string[],
  registry: ComponentRegistry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedConfig> {
  const parsed = parseConfigTexts(readConfigFiles(paths), env);
  try {
    await registry.loadTypes?.(namedTypes(parsed));
  } catch (error) {
    throw new Error(`cannot load the components of ${paths.join(', ')}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return new ConfigLoader(registry).load(parsed);
}

/** Config texts parsed (after ${VAR} interpolation), with the problems found doing so; not yet validated. */
export interface ParsedConfig {
  readonly files: readonly ParsedFile[];
  readonly problems: readonly ConfigProblem[];
}

interface ParsedFile extends ConfigFile {
  /** The document as plain values. */
  readonly root: unknown;
}

/** Parses each text once; a file with a problem (a missing variable, bad YAML) is left out and reported. */
export function parseConfigTexts(texts: readonly ConfigText[], env: NodeJS.ProcessEnv = process.env): ParsedConfig {
  const files: ParsedFile[] = [];
  const problems: ConfigProblem[] = [];
  for (const { file, text } of texts) {
    const origin = parseText(file, text, env, problems);
    if (origin) files.push({ ...origin, root: origin.doc.toJS({ maxAliasCount: 100 }) as unknown });
  }
  return { files, problems };
}

/** The component types each section names, as written (validation comes later and reports the rest). */
function namedTypes(parsed: ParsedConfig): Record<keyof typeof SECTIONS, string[]> {
  const named: Record<keyof typeof SECTIONS, string[]> = { sources: [], transforms: [], sinks: [] };
  for (const { root } of parsed.files) {
    if (!isPlainObject(root)) continue;
    for (const section of Object.keys(SECTIONS) as (keyof typeof SECTIONS)[]) {
      const components = root[section];
      if (!isPlainObject(components)) continue;
      for (const component of Object.values(components)) {
        const type = isPlainObject(component) ? component.type : undefined;
        if (typeof type === 'string') named[section].push(type);
      }
    }
  }
  return named;
}

function parseText(
  file: string,
  original: string,
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
): ConfigFile | undefined {
  const { text, problems: missing } = interpolateText(original, env);
  if (missing.length > 0) {
    const lines = new LineCounter();
    parseDocument(original, { lineCounter: lines });
    for (const p of missing) {
      const pos = lines.linePos(p.offset);
      problems.push({
        code: 'FLUXO_CONFIG_MISSING_ENV',
        file,
        line: pos.line,
        column: pos.col,
        path: '',
        message: p.message,
      });
    }
    return undefined;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    const duplicate = e.code === 'DUPLICATE_KEY';
    problems.push({
      code: duplicate ? 'FLUXO_CONFIG_DUPLICATE_ID' : 'FLUXO_CONFIG_SYNTAX',
      file,
      line: pos.line,
      column: pos.col,
      path: '',
      message: duplicate ? `duplicate key: ${firstLine(e.message)}` : `YAML syntax error: ${firstLine(e.message)}`,
    });
  }
  return doc.errors.length > 0 ? undefined : { file, doc, lines };
}

class ConfigLoader {
  private readonly problems: ConfigProblem[] = [];
  private readonly warnings: ConfigProblem[] = [];
  private readonly tests: { file: string; value: unknown }[] = [];

  constructor(private readonly registry: ComponentRegistry) {}

  load(parsed: ParsedConfig): LoadedConfig {
    const globals: Record<string, { value: unknown; origin: ConfigFile }> = {};
    const components = new Map<string, RawComponent>();

    this.problems.push(...parsed.problems);
    for (const origin of parsed.files) {
      const root = origin.root;
      if (root === null || root === undefined) continue;
      if (!isPlainObject(root)) {
        this.report(
          origin,
          [],
          'FLUXO_CONFIG_INVALID_TYPE',
          `expected a map of settings at the top, found ${describeFound(root)}`,
        );
        continue;
      }
      for (const [key, value] of Object.entries(root)) {
        if (!TOP_LEVEL_KEYS.includes(key)) {
          this.reportKey(
            origin,
            [],
            key,
            'FLUXO_CONFIG_UNKNOWN_KEY',
            `unknown key "${key}"${didYouMean(key, TOP_LEVEL_KEYS)}; expected one of: ${TOP_LEVEL_KEYS.join(', ')}`,
          );
          continue;
        }
        if (key === 'tests') {
          this.tests.push({ file: origin.file, value });
          continue;
        }
        if (!(key in SECTIONS)) {
          globals[key] = { value, origin };
          continue;
        }
        const section = key as keyof typeof SECTIONS;
        if (value === null) continue;
        if (!isPlainObject(value)) {
          this.report(
            origin,
            [section],
            'FLUXO_CONFIG_INVALID_TYPE',
            `expected a map of component ids to their settings, found ${describeFound(value)}`,
          );
          continue;
        }
        for (const [id, raw] of Object.entries(value)) this.addComponent(components, origin, section, id, raw);
      }
    }

    const global = this.validateGlobals(globals);
    const specs = new Map<string, { component: RawComponent; spec: Record<string, unknown> }>();
    for (const c of components.values()) {
      const spec = this.validateComponent(c);
      if (spec) specs.set(c.id, { component: c, spec });
    }
    this.validateGraph(components, specs);
    // Only when all else is right: a file that did not parse, or a misplaced section, already has its problem.
    if (this.problems.length === 0) this.validateNotEmpty(components, parsed.files[0]?.file ?? '');
    if (global) this.validateListeners(global, globals.api?.origin, specs);
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return { config: this.build(global!, specs), warnings: this.warnings, tests: this.tests };
  }

  private addComponent(
    components: Map<string, RawComponent>,
    origin: ConfigFile,
    section: keyof typeof SECTIONS,
    id: string,
    raw: unknown,
  ): void {
    const kind = SECTIONS[section];
    if (!ID_PATTERN.test(id)) {
      this.reportKey(
        origin,
        [section],
        id,
        'FLUXO_CONFIG_INVALID_ID',
        `invalid id "${id}": use letters, digits, "_" and "-" only`,
      );
      return;
    }
    if (id === DEAD_LETTER_ID) {
      this.reportKey(
        origin,
        [section],
        id,
        'FLUXO_CONFIG_INVALID_ID',
        `"${DEAD_LETTER_ID}" is reserved for the dead letter output; pick another id`,
      );
      return;
    }
    const existing = components.get(id);
    if (existing) {
      const where = existing.origin === origin ? '' : ` in ${existing.origin.file}`;
      this.reportKey(
        origin,
        [section],
        id,
        'FLUXO_CONFIG_DUPLICATE_ID',
        `duplicate id "${id}": already used by ${existing.kind} "${id}"${where}; component ids must be unique across sources, transforms and sinks`,
      );
      return;
    }
    if (!isPlainObject(raw)) {
      this.report(
        origin,
        [section, id],
        'FLUXO_CONFIG_INVALID_TYPE',
        `expected the settings of ${kind} "${id}" as a map with at least "type", found ${describeFound(raw)}`,
      );
      return;
    }
    components.set(id, { id, kind, section, raw, origin });
  }

  private validateGlobals(globals: Record<string, { value: unknown; origin: ConfigFile }>) {
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(globals)) raw[k] = v.value;
    const result = globalOptions.safeParse(raw);
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      const top = String(issue.path[0] ?? '');
      const origin = globals[top]?.origin;
      if (origin) this.reportIssue(origin, [], raw, globalOptions, issue);
    }
    return undefined;
  }

  private validateComponent(c: RawComponent): Record<string, unknown> | undefined {
    const base: Path = [c.section, c.id];
    const registryMap = this.registry[c.section] as ReadonlyMap<string, ComponentDefinition>;
    const type = c.raw.type;
    const available = [...knownTypes(this.registry, c.section)].sort();
    if (typeof type !== 'string') {
      if (type === undefined) {
        this.reportKey(
          c.origin,
          [c.section],
          c.id,
          'FLUXO_CONFIG_MISSING_KEY',
          `missing required key "type"; expected one of: ${available.join(', ')}`,
        );
      } else {
        this.report(
          c.origin,
          [...base, 'type'],
          'FLUXO_CONFIG_INVALID_TYPE',
          `expected a ${c.kind} type (${available.join(', ')}), found ${describeFound(type)}`,
        );
      }
      return undefined;
    }
    const def = registryMap.get(type);
    if (!def) {
      const elsewhere = (['sources', 'transforms', 'sinks'] as const).find(
        (s) => s !== c.section && knownTypes(this.registry, s).includes(type),
      );
      const hint = elsewhere
        ? `; "${type}" is a ${SECTIONS[elsewhere]} type, it belongs under ${elsewhere}`
        : didYouMean(type, available);
      this.report(
        c.origin,
        [...base, 'type'],
        'FLUXO_CONFIG_UNKNOWN_TYPE',
        `unknown ${c.kind} type "${type}"${hint}; available: ${available.join(', ')}`,
      );
      return undefined;
    }
    const schema = componentSchema(def);
    const result = schema.safeParse(c.raw);
    if (!result.success) {
      for (const issue of result.error.issues) this.reportIssue(c.origin, base, c.raw, schema, issue);
      return undefined;
    }
    return result.data as Record<string, unknown>;
  }

  private validateGraph(
    components: Map<string, RawComponent>,
    specs: Map<string, { component: RawComponent; spec: Record<string, unknown> }>,
  ): void {
    const nodes: GraphNode[] = [];
    for (const c of components.values()) {
      const parsed = specs.get(c.id)?.spec;
      const rawInputs = parsed?.inputs ?? c.raw.inputs;
      const inputs = Array.isArray(rawInputs) ? rawInputs.filter((i): i is string => typeof i === 'string') : [];
      let outputs: string[] = [];
      if (c.kind === 'transform' && parsed) {
        const def = this.registry.transforms.get(c.raw.type as string);
        outputs = def?.outputs?.(stripWiring(parsed, 'transform') as never) ?? [];
      }
      nodes.push({ id: c.id, kind: c.kind, inputs, outputs });
    }
    const { problems, warnings } = checkGraph(nodes);
    for (const [list, target] of [
      [problems, this.problems],
      [warnings, this.warnings],
    ] as const) {
      for (const p of list) {
        const c = components.get(p.id)!;
        const path: Path = p.inputIndex === undefined ? [c.section, c.id] : [c.section, c.id, 'inputs', p.inputIndex];
        const pos =
          p.inputIndex === undefined ? this.keyPosition(c.origin, [c.section], c.id) : this.position(c.origin, path);
        target.push({
          code: p.code,
          file: c.origin.file,
          line: pos.line,
          column: pos.col,
          path: path.join('.'),
          message: p.message,
        });
      }
    }
  }

  /** A pipeline without sources reads nothing and one without sinks discards everything: both are mistakes. */
  private validateNotEmpty(components: Map<string, RawComponent>, file: string): void {
    const kinds = new Set([...components.values()].map((c) => c.kind));
    const missing = (['source', 'sink'] as const).filter((k) => !kinds.has(k));
    if (missing.length === 0) return;
    const [first] = components.values();
    this.problems.push({
      code: 'FLUXO_CONFIG_EMPTY',
      file: first?.origin.file ?? file,
      line: 0,
      column: 0,
      path: '',
      message:
        `the pipeline has no ${missing.map((k) => `${k}s`).join(' and no ')}: declare at least one source under ` +
        '`sources:` and one sink under `sinks:` that reads from it (see fluxo.yaml or examples/)',
    });
  }

  /** Two listeners on one port and transport would fail at start with EADDRINUSE, without saying who. */
  private validateListeners(
    global: z.infer<typeof globalOptions>,
    apiOrigin: ConfigFile | undefined,
    specs: Map<string, { component: RawComponent; spec: Record<string, unknown> }>,
  ): void {
    const listeners: Listener[] = [];
    if (global.api.enabled) listeners.push({ id: 'api', protocol: 'tcp', address: global.api.address });
    for (const { component: c, spec } of specs.values()) {
      if (c.kind === 'source') listeners.push(...listenersOf(c.id, spec.type as string, spec));
    }
    const where = (id: string): { origin: ConfigFile | undefined; path: Path; name: string } => {
      if (id === 'api') return { origin: apiOrigin, path: ['api', 'address'], name: 'the api' };
      const c = specs.get(id)!.component;
      return { origin: c.origin, path: [c.section, c.id, 'address'], name: `source "${id}"` };
    };
    for (const { first, second } of findListenerConflicts(listeners)) {
      // Reported at the source (the api's address is often a default, with no line of its own).
      const [other, at] = second.id === 'api' ? [second, first] : [first, second];
      const o = where(other.id);
      const a = where(at.id);
      const origin = a.origin ?? o.origin;
      if (!origin) continue;
      const pos = o.origin ? this.position(o.origin, o.path) : undefined;
      const otherPlace = o.origin && pos && pos.line > 0 ? ` (${o.origin.file}:${pos.line})` : '';
      const sameAddress = other.address === at.address ? '' : ` (${other.address})`;
      this.report(
        origin,
        a.path,
        'FLUXO_CONFIG_ADDRESS_CONFLICT',
        `${a.name} listens on ${at.protocol} ${at.address}, the port of ${o.name}${otherPlace}${sameAddress}; ` +
          'two listeners cannot share a port and transport: give one another port (0 picks a free one)',
      );
    }
  }

  private build(
    global: z.infer<typeof globalOptions>,
    specs: Map<string, { component: RawComponent; spec: Record<string, unknown> }>,
  ): PipelineConfig {
    const sources = new Map<string, ComponentSpec>();
    const transforms = new Map<string, TransformSpec>();
    const sinks = new Map<string, SinkSpec>();
    for (const { component: c, spec } of specs.values()) {
      const common = { id: c.id, type: spec.type as string, fingerprint: JSON.stringify([c.kind, c.raw]) };
      const options = stripWiring(spec, c.kind);
      if (c.kind === 'source') sources.set(c.id, { ...common, options });
      else if (c.kind === 'transform') transforms.set(c.id, { ...common, options, inputs: spec.inputs as string[] });
      else {
        const buffer = spec.buffer as
          | { type: 'memory'; max_events: number; max_bytes: number; when_full: 'block' | 'drop_newest' }
          | {
              type: 'disk';
              max_size: number;
              when_full: 'block' | 'drop_newest';
              sync: 'always' | 'interval';
              sync_interval: number;
              commit_interval: number;
              write_delay: number;
              max_segment_size?: number;
            };
        const retry = spec.retry as { initial_backoff: number; max_backoff: number; max_attempts: number };
        const batch = spec.batch as { max_events: number; max_bytes: number; timeout?: number };
        const definition = this.registry.sinks.get(common.type);
        sinks.set(c.id, {
          ...common,
          options,
          inputs: spec.inputs as string[],
          buffer:
            buffer.type === 'disk'
              ? {
                  type: 'disk',
                  maxSize: buffer.max_size,
                  whenFull: buffer.when_full,
                  sync: buffer.sync,
                  syncIntervalMs: buffer.sync_interval,
                  commitIntervalMs: buffer.commit_interval,
                  writeDelayMs: buffer.write_delay,
                  maxSegmentSize: buffer.max_segment_size,
                }
              : {
                  type: 'memory',
                  maxEvents: buffer.max_events,
                  maxBytes: buffer.max_bytes,
                  whenFull: buffer.when_full,
                },
          batchMaxEvents: batch.max_events,
          batchMaxBytes: batch.max_bytes,
          batchTimeoutMs: batch.timeout ?? definition?.defaultBatchTimeoutMs ?? 0,
          timeoutMs: (spec.timeout as number | undefined) ?? 0,
          healthcheck: spec.healthcheck as boolean,
          concurrency: spec.concurrency as number,
          retry: {
            initialBackoffMs: retry.initial_backoff,
            maxBackoffMs: retry.max_backoff,
            maxAttempts: retry.max_attempts,
          },
        });
      }
    }
    return {
      dataDir: resolve(global.data_dir),
      api: global.api,
      shutdownTimeoutMs: global.shutdown_timeout,
      sources,
      transforms,
      sinks,
    };
  }

  private reportIssue(origin: ConfigFile, base: Path, raw: unknown, schema: z.ZodType, issue: z.core.$ZodIssue): void {
    const rel = issue.path.map((p) => (typeof p === 'number' ? p : String(p)));
    const path = [...base, ...rel];
    const found = valueAt(raw, rel);
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = objectKeysAt(schema, rel, raw) ?? [];
        for (const key of issue.keys) {
          this.reportKey(
            origin,
            path,
            key,
            'FLUXO_CONFIG_UNKNOWN_KEY',
            `unknown key "${key}"${didYouMean(key, allowed)}; expected one of: ${allowed.join(', ')}`,
          );
        }
        return;
      }
      case 'invalid_value': {
        const values = issue.values.map((v) => JSON.stringify(v));
        const hint = typeof found === 'string' ? didYouMean(found, issue.values.map(String)) : '';
        this.report(
          origin,
          path,
          'FLUXO_CONFIG_INVALID_VALUE',
          `expected one of ${values.join(', ')}, found ${describeFound(found)}${hint}`,
        );
        return;
      }
      case 'invalid_type':
        if (found === undefined) {
          this.reportMissing(
            origin,
            path,
            `missing required key "${path[path.length - 1]}": expected ${describeExpected(issue)}`,
          );
          return;
        }
        this.report(
          origin,
          path,
          'FLUXO_CONFIG_INVALID_TYPE',
          `expected ${describeExpected(issue)}, found ${describeFound(found)}`,
        );
        return;
      default: {
        const message =
          issue.message.startsWith('Too ') || issue.message.startsWith('Invalid')
            ? lowerFirst(issue.message)
            : issue.message;
        const withFound = /found/.test(message) ? message : `${message}, found ${describeFound(found)}`;
        this.report(origin, path, 'FLUXO_CONFIG_INVALID_VALUE', withFound);
      }
    }
  }

  private report(origin: ConfigFile, path: Path, code: ErrorCode, message: string): void {
    const pos = this.position(origin, path);
    this.problems.push({ code, file: origin.file, line: pos.line, column: pos.col, path: path.join('.'), message });
  }

  private reportKey(origin: ConfigFile, mapPath: Path, key: string, code: ErrorCode, message: string): void {
    const pos = this.keyPosition(origin, mapPath, key);
    this.problems.push({
      code,
      file: origin.file,
      line: pos.line,
      column: pos.col,
      path: [...mapPath, key].join('.'),
      message,
    });
  }

  /** A missing key is reported at the key of the map that should hold it. */
  private reportMissing(origin: ConfigFile, path: Path, message: string): void {
    const parent = path.slice(0, -1);
    const pos =
      parent.length > 0
        ? this.keyPosition(origin, parent.slice(0, -1), parent[parent.length - 1]!)
        : { line: 1, col: 1 };
    this.problems.push({
      code: 'FLUXO_CONFIG_MISSING_KEY',
      file: origin.file,
      line: pos.line,
      column: pos.col,
      path: path.join('.'),
      message,
    });
  }

  /** Position of the deepest node of `path` present in the document. */
  private position(origin: ConfigFile, path: Path): { line: number; col: number } {
    for (let n = path.length; n > 0; n--) {
      const node = origin.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return origin.lines.linePos(node.range[0]);
    }
    return { line: 1, col: 1 };
  }

  /** Position of `key` itself in the map at `mapPath`, falling back to the map. */
  private keyPosition(origin: ConfigFile, mapPath: Path, key: string | number): { line: number; col: number } {
    const map = mapPath.length === 0 ? origin.doc.contents : origin.doc.getIn(mapPath, true);
    if (isMap(map)) {
      for (const pair of map.items) {
        if (isScalar(pair.key) && String(pair.key.value) === String(key) && pair.key.range) {
          return origin.lines.linePos(pair.key.range[0]);
        }
      }
    }
    return this.position(origin, [...mapPath, key]);
  }
}

function stripWiring(spec: Record<string, unknown>, kind: Kind): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) {
    if (k === 'type' || k === 'inputs' || (kind === 'sink' && SINK_COMMON_KEYS.has(k))) continue;
    options[k] = v;
  }
  return options;
}

function describeExpected(issue: z.core.$ZodIssue): string {
  if (!issue.message.startsWith('Invalid input')) return issue.message.replace(/^expected /, '');
  const expected = (issue as { expected?: string }).expected ?? 'a value';
  const names: Record<string, string> = {
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    boolean: 'true or false',
    object: 'a map',
    array: 'a list',
  };
  return names[expected] ?? expected;
}

function valueAt(raw: unknown, path: (string | number)[]): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function firstLine(s: string): string {
  return s.split('\n')[0]!;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
