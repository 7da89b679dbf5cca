import { z } from 'zod';
import type { Event } from '../../core/event.ts';

/*
 * The columns of the Parquet master dataset and how an event's values become them.
 *
 * Declared columns come from the `schema:` option; `infer` adds a column for each other field of the first
 * events of a seal. Whatever does not fit a column (an unknown field in relaxed/infer mode, a value of another
 * type, a field first seen after the schema of the file was fixed) goes into the `_extra` JSON column, so a
 * seal never drops a value: the Parquet file holds what the staging held.
 */

export const SCALAR_TYPES = ['string', 'int64', 'double', 'boolean', 'timestamp', 'json', 'map'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];
export type ColumnType = ScalarType | 'list';
export type TimeUnit = 'ms' | 'us' | 'ns';

export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  /** The element type of a list. */
  readonly items?: ScalarType;
  readonly unit: TimeUnit;
  readonly zone: 'utc' | 'local';
  /** strict mode: an event without a value here is dead-lettered. */
  readonly required: boolean;
  /** Inferred: accepts the values its type was widened from (a string column takes numbers as text). */
  readonly widened?: boolean;
}

/** The column that holds what fits no other column, as a JSON object. */
export const EXTRA_COLUMN = '_extra';

const columnObject = z
  .object({
    type: z.enum([...SCALAR_TYPES, 'list']).describe('The column type.'),
    items: z
      .enum(SCALAR_TYPES)
      .optional()
      .describe('With `type: list`: the type of the elements (`list` of `string` by default).'),
    unit: z.enum(['ms', 'us', 'ns']).default('ms').describe('With `type: timestamp`: the stored precision.'),
    zone: z
      .enum(['utc', 'local'])
      .default('utc')
      .describe(
        'With `type: timestamp`: `utc` (an instant, isAdjustedToUTC) or `local` (the wall-clock time of the host).',
      ),
    required: z
      .boolean()
      .default(false)
      .describe('In `strict` mode an event without this field (or with null) is dead-lettered.'),
  })
  .strict();

export const schemaOption = z
  .record(
    z.string().min(1),
    z.union([
      z.enum([...SCALAR_TYPES, 'list']).describe('The column type, shorthand for `{ type: … }`.'),
      columnObject,
    ]),
  )
  .optional()
  .describe(
    'With `encoding: parquet`: the columns, field → type (`string`, `int64`, `double`, `boolean`, `timestamp`, ' +
      '`list`, `map`/`json` = a JSON string column) or `{ type, unit: ms|us|ns, zone: utc|local, items, required }`. ' +
      'Top-level fields. `_id`, `timestamp` (TIMESTAMP, ms UTC unless declared) and the `{{ field }}`s of `path` are always columns.',
  );

export const schemaModeOption = z
  .enum(['infer', 'strict', 'relaxed'])
  .optional()
  .describe(
    'With `encoding: parquet` (default `infer`). `infer`: the declared columns plus one for each other field of the first events of ' +
      'each file (conflicting types widen: int64 → double → string; objects, arrays and mixes with them → json). ' +
      '`strict`: an event with an undeclared field, a missing `required` field or a value of another type is ' +
      'dead-lettered with the reason before it is acknowledged. `relaxed`: the declared columns, and every other ' +
      'field (or a value of another type) goes into the `_extra` JSON column. Nothing is ever dropped.',
  );

export type SchemaOption = z.infer<typeof schemaOption>;
export type SchemaMode = NonNullable<z.infer<typeof schemaModeOption>>;

export function declaredColumns(schema: SchemaOption, alwaysStrings: readonly string[]): ColumnSpec[] {
  const columns = new Map<string, ColumnSpec>();
  const add = (spec: ColumnSpec) => {
    if (!columns.has(spec.name)) columns.set(spec.name, spec);
  };
  const entries = Object.entries(schema ?? {});
  const declared = new Map(entries);
  for (const name of ['_id', 'timestamp', ...alwaysStrings]) {
    const given = declared.get(name);
    if (given !== undefined) add(specOf(name, given));
    else add(defaultSpec(name, name === 'timestamp' ? 'timestamp' : 'string', name !== 'timestamp'));
  }
  for (const [name, given] of entries) add(specOf(name, given));
  return [...columns.values()];
}

function specOf(name: string, given: NonNullable<SchemaOption>[string]): ColumnSpec {
  if (typeof given === 'string') return defaultSpec(name, given);
  return {
    name,
    type: given.type,
    items: given.type === 'list' ? (given.items ?? 'string') : undefined,
    unit: given.unit,
    zone: given.zone,
    required: given.required,
  };
}

function defaultSpec(name: string, type: ColumnType, widened = false): ColumnSpec {
  return {
    name,
    type,
    items: type === 'list' ? 'string' : undefined,
    unit: 'ms',
    zone: 'utc',
    required: false,
    widened,
  };
}

/** Marks a value that does not fit its column. */
export const NO_FIT: unique symbol = Symbol('no fit');
type Converted = string | number | bigint | boolean | null | unknown[] | object;

const UNIT_PER_MS: Record<TimeUnit, bigint> = { ms: 1n, us: 1_000n, ns: 1_000_000n };
const FRACTION = /\.(\d+)/;

/** The last string timestampValue() converted, for which column, and to what: log lines come in runs of one second. */
let lastText: string | undefined;
let lastSpec: ColumnSpec | undefined;
let lastResult: bigint | typeof NO_FIT = NO_FIT;

/** Epoch time in `unit` from an ISO-8601 string or epoch milliseconds; NO_FIT when it is neither. */
export function timestampValue(value: unknown, spec: ColumnSpec): bigint | typeof NO_FIT {
  if (typeof value === 'string') {
    if (value === lastText && spec === lastSpec) return lastResult;
    lastResult = timestampOf(value, spec);
    lastText = value;
    lastSpec = spec;
    return lastResult;
  }
  return timestampOf(value, spec);
}

function timestampOf(value: unknown, spec: ColumnSpec): bigint | typeof NO_FIT {
  let ms: number;
  let sub = 0n;
  if (typeof value === 'number' && Number.isFinite(value)) {
    ms = Math.floor(value);
    if (spec.unit !== 'ms') sub = BigInt(Math.round((value - ms) * Number(UNIT_PER_MS[spec.unit])));
  } else if (typeof value === 'string') {
    ms = Date.parse(value);
    if (Number.isNaN(ms)) return NO_FIT;
    if (spec.unit !== 'ms') {
      // Date.parse keeps milliseconds; the digits after them are the finer part.
      const m = FRACTION.exec(value);
      if (m !== null && m[1]!.length > 3) {
        const digits = spec.unit === 'us' ? 3 : 6;
        sub = BigInt(m[1]!.slice(3, 3 + digits).padEnd(digits, '0'));
      }
    }
  } else {
    return NO_FIT;
  }
  // Local wall-clock time stored as if it were UTC (isAdjustedToUTC = false).
  if (spec.zone === 'local') ms -= new Date(ms).getTimezoneOffset() * 60_000;
  return BigInt(ms) * UNIT_PER_MS[spec.unit] + sub;
}

function scalarValue(value: unknown, type: ScalarType, widened: boolean): Converted | typeof NO_FIT {
  switch (type) {
    case 'string':
      if (typeof value === 'string') return value;
      if (widened && (typeof value === 'number' || typeof value === 'boolean')) return String(value);
      return NO_FIT;
    case 'int64':
      return typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : NO_FIT;
    case 'double':
      return typeof value === 'number' ? value : NO_FIT;
    case 'boolean':
      return typeof value === 'boolean' ? value : NO_FIT;
    case 'map':
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : NO_FIT;
    case 'json':
      return value as Converted;
    case 'timestamp':
      return NO_FIT;
  }
}

/** The value for column `spec` (null for a missing value), or NO_FIT. */
export function columnValue(value: unknown, spec: ColumnSpec): Converted | typeof NO_FIT {
  if (value === undefined || value === null) return null;
  if (spec.type === 'timestamp') return timestampValue(value, spec);
  if (spec.type !== 'list') return scalarValue(value, spec.type, spec.widened === true);
  if (!Array.isArray(value)) return NO_FIT;
  const items = spec.items ?? 'string';
  const out: unknown[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const v = value[i];
    const c =
      v === null || v === undefined
        ? null
        : items === 'timestamp'
          ? timestampValue(v, spec)
          : scalarValue(v, items, false);
    if (c === NO_FIT) return NO_FIT;
    out[i] = c;
  }
  return out;
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function typeName(spec: ColumnSpec): string {
  return spec.type === 'list' ? `list of ${spec.items ?? 'string'}` : spec.type;
}

/**
 * strict mode: why `event` does not fit `columns`, or undefined when it does. Checked in send(), before the
 * acknowledgement, so a misfit is dead-lettered with this reason and the seal never meets one.
 */
export function strictMisfit(event: Event, columns: ReadonlyMap<string, ColumnSpec>): string | undefined {
  for (const key in event) {
    const spec = columns.get(key);
    const value = event[key];
    if (spec === undefined) {
      if (value === undefined) continue;
      return `field \`${key}\` is not in the schema (schema_mode: strict)`;
    }
    if (value === null || value === undefined) continue;
    if (columnValue(value, spec) === NO_FIT) {
      return `field \`${key}\` is ${describeValue(value)}, the schema says ${typeName(spec)}`;
    }
  }
  for (const spec of columns.values()) {
    if (spec.required && (event[spec.name] === undefined || event[spec.name] === null)) {
      return `required field \`${spec.name}\` is missing (schema_mode: strict)`;
    }
  }
  return undefined;
}

/** The type a value suggests when inferring. */
function inferredType(value: unknown): ScalarType | undefined {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isSafeInteger(value) ? 'int64' : 'double';
    case 'object':
      return value === null ? undefined : 'json';
    default:
      return undefined;
  }
}

/** The type both values fit: int64 → double → string; objects, arrays and mixes with them → json. */
export function widen(a: ScalarType | undefined, b: ScalarType | undefined): ScalarType | undefined {
  if (a === undefined || a === b) return b;
  if (b === undefined) return a;
  if (a === 'json' || b === 'json') return 'json';
  if ((a === 'int64' && b === 'double') || (a === 'double' && b === 'int64')) return 'double';
  return 'string';
}

/**
 * The columns of one file in `infer` mode: the declared ones, then one per other field of `sample` in the
 * order first seen, typed by widening. A field that is only ever null becomes a string column.
 */
export function inferColumns(declared: readonly ColumnSpec[], sample: readonly Event[]): ColumnSpec[] {
  const known = new Set(declared.map((c) => c.name));
  known.add(EXTRA_COLUMN);
  const types = new Map<string, ScalarType | undefined>();
  for (const event of sample) {
    for (const key in event) {
      if (known.has(key)) continue;
      const value = event[key];
      if (value === undefined) continue;
      types.set(key, widen(types.get(key), inferredType(value)));
    }
  }
  const inferred = [...types].map(([name, type]) => defaultSpec(name, type ?? 'string', true));
  return [...declared, ...inferred];
}

/** What a hyparquet-writer schema element list is made of (kept loose: the library's own type is wide). */
export interface SchemaElement {
  name: string;
  type?: string;
  converted_type?: string;
  logical_type?: Record<string, unknown>;
  repetition_type?: string;
  num_children?: number;
}

const UNIT_NAME: Record<TimeUnit, string> = { ms: 'MILLIS', us: 'MICROS', ns: 'NANOS' };

function leafElement(name: string, type: ScalarType, spec: ColumnSpec): SchemaElement {
  const repetition_type = 'OPTIONAL';
  switch (type) {
    case 'string':
      return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
    case 'int64':
      return { name, type: 'INT64', repetition_type };
    case 'double':
      return { name, type: 'DOUBLE', repetition_type };
    case 'boolean':
      return { name, type: 'BOOLEAN', repetition_type };
    case 'timestamp':
      return {
        name,
        type: 'INT64',
        repetition_type,
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: spec.zone === 'utc', unit: UNIT_NAME[spec.unit] },
      };
    case 'json':
    case 'map':
      return { name, type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type };
  }
}

/** The Parquet schema of `columns` plus `_extra`, as hyparquet-writer takes it. */
export function parquetSchema(columns: readonly ColumnSpec[]): SchemaElement[] {
  const elements: SchemaElement[] = [{ name: 'root', num_children: columns.length + 1 }];
  for (const spec of columns) {
    if (spec.type !== 'list') {
      elements.push(leafElement(spec.name, spec.type, spec));
      continue;
    }
    // The three-level LIST layout every reader understands.
    elements.push(
      { name: spec.name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      leafElement('element', spec.items ?? 'string', spec),
    );
  }
  elements.push({ name: EXTRA_COLUMN, type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' });
  return elements;
}

/**
 * The rows of one row group as column arrays over the declared columns, plus `_extra`: what has no column, or
 * a value that does not fit its column, so nothing is lost. Subclasses may keep fields without a column
 * elsewhere (keepUndeclared).
 */
abstract class ColumnRows {
  private readonly byName: Map<string, number>;
  protected columns: unknown[][];
  protected extra: (Record<string, unknown> | null)[] = [];
  rows = 0;

  constructor(protected readonly specs: readonly ColumnSpec[]) {
    this.byName = new Map(specs.map((s, i) => [s.name, i]));
    this.columns = specs.map(() => []);
  }

  add(event: Event): void {
    const row = this.rows++;
    const columns = this.columns;
    for (let c = 0; c < columns.length; c++) columns[c]![row] = null;
    let extra: Record<string, unknown> | null = null;
    for (const key in event) {
      const value = event[key];
      if (value === undefined) continue;
      const c = this.byName.get(key);
      if (c !== undefined) {
        const converted = columnValue(value, this.specs[c]!);
        if (converted !== NO_FIT) {
          columns[c]![row] = converted;
          continue;
        }
      } else if (this.keepUndeclared(key, value, row)) {
        continue;
      }
      extra ??= {};
      extra[key] = value;
    }
    this.extra[row] = extra;
  }

  /** Adds a staged line that is not JSON (never expected: the sink wrote it) as `_extra._raw`. */
  addRaw(line: string): void {
    const row = this.rows++;
    for (const column of this.columns) column[row] = null;
    this.extra[row] = { _raw: line };
  }

  /** Takes a field that has no declared column (true), or leaves it to `_extra` (false). */
  protected abstract keepUndeclared(key: string, value: unknown, row: number): boolean;
}

/** Transposes events into the column arrays of one row group, over a fixed set of columns. */
export class RowGroupBuilder extends ColumnRows {
  protected keepUndeclared(): boolean {
    return false;
  }

  /** The column data for ParquetWriter.write(), and a fresh builder state. */
  take(): { name: string; data: unknown[] }[] {
    const out = this.specs.map((s, c) => ({ name: s.name, data: this.columns[c]! }));
    out.push({ name: EXTRA_COLUMN, data: this.extra });
    this.columns = this.specs.map(() => []);
    this.extra = [];
    this.rows = 0;
    return out;
  }
}

/**
 * The first row group of an `infer` file, whose columns are known only once the group is complete. Declared
 * columns are converted as rows come; each other field's values are kept as they are, in a column of their
 * own in first-seen order, with the type widened so far. finish() fixes the types and converts them, so the
 * group is the same as inferColumns() over its events then a RowGroupBuilder, but without holding the events.
 */
export class InferringRowGroupBuilder extends ColumnRows {
  private readonly open = new Map<string, { type: ScalarType | undefined; data: unknown[] }>();

  protected keepUndeclared(key: string, value: unknown, row: number): boolean {
    if (key === EXTRA_COLUMN) return false;
    let column = this.open.get(key);
    if (column === undefined) {
      column = { type: undefined, data: [] };
      this.open.set(key, column);
    }
    const data = column.data;
    while (data.length < row) data.push(null);
    data.push(value);
    column.type = widen(column.type, inferredType(value));
    return true;
  }

  /** The file's columns and the column data of its first group. */
  finish(): { columns: ColumnSpec[]; data: { name: string; data: unknown[] }[] } {
    const rows = this.rows;
    const columns = [...this.specs];
    const data = this.specs.map((s, c) => ({ name: s.name, data: this.columns[c]! }));
    for (const [name, column] of this.open) {
      const spec = defaultSpec(name, column.type ?? 'string', true);
      const values = column.data;
      while (values.length < rows) values.push(null);
      for (let row = 0; row < rows; row++) {
        const converted = columnValue(values[row], spec);
        if (converted !== NO_FIT) {
          values[row] = converted;
          continue;
        }
        // Never expected (the type was widened over these very values); kept rather than lost.
        this.extra[row] ??= {};
        this.extra[row]![name] = values[row];
        values[row] = null;
      }
      columns.push(spec);
      data.push({ name, data: values });
    }
    data.push({ name: EXTRA_COLUMN, data: this.extra });
    return { columns, data };
  }
}
