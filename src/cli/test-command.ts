import { existsSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { type Command, Option } from 'commander';
import type { Logger } from 'pino';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { compilePath, getPath, hasPath } from '../codecs/parsers/field-path.ts';
import { interpolateText } from '../config/interpolate.ts';
import { celExpression, compileCel } from '../core/cel.ts';
import type { Transform } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { createLogger } from '../core/logger.ts';
import { PipelineMetrics } from '../core/metrics.ts';
import { type ComponentRegistry, DEAD_LETTER_ID, type PipelineConfig } from '../core/pipeline-config.ts';
import { logRejectedAgain, stampDeadLetter } from '../core/topology/dead-letter.ts';
import { runTransform } from '../core/transform-run.ts';
import { loadWithComponents, resolveConfigPaths } from './run.ts';

/**
 * `fluxo test -c FILE`: unit tests written next to the pipeline they prove, as Vector's `vector test`.
 *
 *   tests:
 *     - name: access lines become typed fields
 *       inputs:
 *         - insert_at: access                 # a transform id: the events enter it as its input
 *           value: '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8"'
 *       outputs:
 *         - extract_from: access              # a transform id, `route_id.output`, or dead_letter
 *           conditions:
 *             - equals: { status: 200, method: GET }
 *             - exists: [timestamp, agent]
 *             - not_exists: [_parse_error]
 *             - condition: 'client.startsWith("203.")'
 *       no_outputs_from: [errors_only]
 *
 * Tests live under `tests:` in the config or in a sibling `FILE.tests.yaml` (`x.tests.yaml` next to `x.yaml`).
 * Each test builds fresh transforms from the validated config (no source or sink starts) and runs them
 * in-process through the graph the config wires. As in Vector, each condition must hold for at least one event
 * extracted; `count` pins the number of events. Input events are frozen, so a transform that changes its input
 * instead of building new events fails the test.
 */

const fieldList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const testInput = z
  .object({
    insert_at: z.string().min(1).describe('The transform the events enter.'),
    value: z.string().optional().describe('One event `{ message: value }`.'),
    values: z.array(z.string()).min(1).optional().describe('One event `{ message: … }` per line.'),
    event: z.record(z.string(), z.unknown()).optional().describe('One event with these fields.'),
    log_fields: z.record(z.string(), z.unknown()).optional().describe('Same as `event` (Vector’s name).'),
    events: z.array(z.record(z.string(), z.unknown())).min(1).optional().describe('Several events.'),
  })
  .strict()
  .superRefine((v, ctx) => {
    const given = (['value', 'values', 'event', 'log_fields', 'events'] as const).filter((k) => v[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `an input needs exactly one of value, values, event, log_fields, events${given.length ? `; found ${given.join(', ')}` : ''}`,
      });
    }
  });

const testCondition = z
  .object({
    equals: z.record(z.string(), z.unknown()).optional(),
    exists: fieldList.optional(),
    not_exists: fieldList.optional(),
    condition: celExpression().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const given = Object.keys(v).filter((k) => v[k as keyof typeof v] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', message: 'a condition is one of: equals, exists, not_exists, condition' });
    }
  });

const testOutput = z
  .object({
    extract_from: fieldList,
    conditions: z.array(testCondition).min(1).optional(),
    count: z.number().int().nonnegative().optional(),
    no_output: z.boolean().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.conditions === undefined && v.count === undefined && v.no_output === undefined) {
      ctx.addIssue({ code: 'custom', message: 'an output needs conditions, count or no_output: true' });
    }
  });

const testCase = z
  .object({
    name: z.string().min(1),
    inputs: z.array(testInput).min(1),
    outputs: z.array(testOutput).default([]),
    no_outputs_from: z.array(z.string().min(1)).default([]),
  })
  .strict();

const testList = z.array(testCase);

type TestCase = z.infer<typeof testCase>;
type TestCondition = z.infer<typeof testCondition>;
type TestOutput = z.infer<typeof testOutput>;

export interface LocatedTests {
  file: string;
  tests: TestCase[];
}

/** `x.tests.yaml` and `x.yaml.tests.yaml` next to `x.yaml`, when they exist. */
export function siblingTestFiles(configPath: string): string[] {
  const base = configPath.replace(/\.(ya?ml|json)$/i, '');
  return [...new Set([`${base}.tests.yaml`, `${base}.tests.yml`, `${configPath}.tests.yaml`])].filter((f) =>
    existsSync(f),
  );
}

function formatIssues(file: string, error: z.ZodError): string[] {
  return error.issues.map(
    (i) =>
      `${file}: tests${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}: ${i.message}`,
  );
}

/** Validates raw `tests` values; returns the tests or the problems, each with its file and path. */
export function readTests(raw: readonly { file: string; value: unknown }[]): {
  tests: LocatedTests[];
  problems: string[];
} {
  const tests: LocatedTests[] = [];
  const problems: string[] = [];
  for (const { file, value } of raw) {
    if (value === null || value === undefined) continue;
    const parsed = testList.safeParse(value);
    if (parsed.success) tests.push({ file, tests: parsed.data });
    else problems.push(...formatIssues(file, parsed.error));
  }
  return { tests, problems };
}

function readTestFile(file: string, problems: string[]): { file: string; value: unknown } | undefined {
  const { text, problems: envProblems } = interpolateText(readFileSync(file, 'utf8'), process.env);
  if (envProblems.length > 0) {
    problems.push(...envProblems.map((p) => `${file}: ${p.message}`));
    return undefined;
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    problems.push(...doc.errors.map((e) => `${file}: YAML syntax error: ${e.message.split('\n')[0]}`));
    return undefined;
  }
  const root = doc.toJS() as unknown;
  const value =
    root !== null && typeof root === 'object' && !Array.isArray(root) ? (root as { tests?: unknown }).tests : root;
  return { file, value };
}

// ---------------------------------------------------------------------------------------------------------
// Running

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** The transforms of a config wired as the config says, run synchronously; records what each output emits. */
class TestGraph {
  readonly recorded = new Map<string, Event[]>();
  private readonly transforms = new Map<string, Transform>();
  private readonly consumers = new Map<string, string[]>();
  private readonly logger: Logger;

  constructor(config: PipelineConfig, components: ComponentRegistry, logLevel: string) {
    const metrics = new PipelineMetrics({ defaultMetrics: false });
    const logger = createLogger({ level: logLevel as never });
    this.logger = logger;
    for (const spec of config.transforms.values()) {
      const def = components.transforms.get(spec.type)!;
      const context = {
        id: spec.id,
        dataDir: config.dataDir,
        logger: logger.child({ component: spec.id, component_type: spec.type }),
        metrics: metrics.forComponent(spec.id, 'transform', spec.type),
      };
      this.transforms.set(spec.id, def.build(spec.options as never, context));
      for (const input of spec.inputs) {
        const list = this.consumers.get(input) ?? [];
        list.push(spec.id);
        this.consumers.set(input, list);
      }
    }
  }

  /** Output names events can be extracted from: each transform, its named outputs, and dead_letter. */
  outlets(): Set<string> {
    const names = new Set<string>([DEAD_LETTER_ID]);
    for (const [id, t] of this.transforms) {
      names.add(id);
      for (const o of t.outputs ?? []) names.add(`${id}.${o}`);
    }
    return names;
  }

  has(id: string): boolean {
    return this.transforms.has(id);
  }

  insert(id: string, events: Event[]): void {
    this.deliver(id, deepFreeze(events));
  }

  private record(outlet: string, events: Event[]): void {
    const list = this.recorded.get(outlet);
    if (list) list.push(...events);
    else this.recorded.set(outlet, [...events]);
    for (const consumer of this.consumers.get(outlet) ?? []) this.deliver(consumer, deepFreeze(events));
  }

  private deliver(id: string, events: Event[]): void {
    const { pushed, dead } = runTransform(id, this.transforms.get(id)!, events);
    for (const p of pushed) this.record(p.output === undefined ? id : `${id}.${p.output}`, p.events);
    for (const d of dead) {
      const { stamped, rejectedAgain } = stampDeadLetter(d.events, d.reason, id, new Date().toISOString());
      logRejectedAgain(this.logger, id, d.reason, rejectedAgain);
      if (stamped.length > 0) this.record(DEAD_LETTER_ID, stamped);
    }
  }
}

function toEvents(input: z.infer<typeof testInput>): Event[] {
  if (input.value !== undefined) return [{ message: input.value }];
  if (input.values !== undefined) return input.values.map((message) => ({ message }));
  if (input.event !== undefined) return [structuredClone(input.event)];
  if (input.log_fields !== undefined) return [structuredClone(input.log_fields)];
  return structuredClone(input.events!);
}

const show = (v: unknown) => (v === undefined ? '(missing)' : JSON.stringify(v));

/** Why `event` does not meet `condition` (lines of a readable diff), or undefined when it does. */
function explain(condition: TestCondition, event: Event): string[] | undefined {
  if (condition.equals !== undefined) {
    const lines: string[] = [];
    for (const [field, expected] of Object.entries(condition.equals)) {
      const actual = getPath(event, compilePath(field));
      if (isDeepStrictEqual(actual, expected)) continue;
      lines.push(`${field}:`, `  - expected: ${show(expected)}`, `  + actual:   ${show(actual)}`);
    }
    return lines.length ? lines : undefined;
  }
  if (condition.exists !== undefined || condition.not_exists !== undefined) {
    const want = condition.exists !== undefined;
    const fields = [want ? condition.exists! : condition.not_exists!].flat();
    const lines = fields
      .filter((f) => hasPath(event, compilePath(f)) !== want)
      .map((f) => (want ? `${f}: missing` : `${f}: present, ${show(getPath(event, compilePath(f)))}`));
    return lines.length ? lines : undefined;
  }
  const source = condition.condition!;
  try {
    const result = compileCel(source)(event);
    return result === true
      ? undefined
      : [`${source}: ${result === false ? 'false' : `gave ${String(result)}, not true`}`];
  } catch (error) {
    return [`${source}: ${(error as Error).message.split('\n')[0]}`];
  }
}

function conditionLabel(c: TestCondition, n: number): string {
  const kind = Object.keys(c).find((k) => c[k as keyof TestCondition] !== undefined)!;
  return `condition ${n} (${kind})`;
}

function indent(lines: string[], by: string): string[] {
  return lines.map((l) => by + l);
}

/** Runs one test; returns the failure lines (empty when it passed). */
export function runTest(
  test: TestCase,
  config: PipelineConfig,
  components: ComponentRegistry,
  logLevel = 'silent',
): string[] {
  const graph = new TestGraph(config, components, logLevel);
  const outlets = graph.outlets();
  const failures: string[] = [];
  for (const input of test.inputs) {
    if (!graph.has(input.insert_at)) {
      failures.push(`insert_at ${input.insert_at}: no transform has this id (tests insert events at transforms)`);
    }
  }
  const outputs: TestOutput[] = [
    ...test.outputs,
    ...test.no_outputs_from.map((id) => ({ extract_from: id, no_output: true }) as TestOutput),
  ];
  for (const o of outputs) {
    for (const name of [o.extract_from].flat()) {
      if (!outlets.has(name)) {
        const hint = graph.has(name.split('.')[0]!)
          ? `; its outputs: ${[...outlets].filter((x) => x.startsWith(`${name.split('.')[0]}`)).join(', ')}`
          : '';
        failures.push(`extract_from ${name}: no such transform output${hint}`);
      }
    }
  }
  if (failures.length > 0) return failures;
  for (const input of test.inputs) graph.insert(input.insert_at, toEvents(input));

  const elsewhere = () =>
    [...graph.recorded].map(([name, events]) => `${name}: ${events.length}`).join(', ') ||
    'nowhere (every event was dropped)';
  for (const o of outputs) {
    const names = [o.extract_from].flat();
    const label = names.join(', ');
    const events = names.flatMap((n) => graph.recorded.get(n) ?? []);
    const eventLines = () => ['events:', ...events.map((e) => `  ${JSON.stringify(e)}`)];
    if (o.no_output) {
      if (events.length > 0)
        failures.push(`${label}: expected no events, got ${events.length}`, ...indent(eventLines(), '  '));
      continue;
    }
    if (o.count !== undefined && events.length !== o.count) {
      failures.push(`${label}: expected ${o.count} event(s), got ${events.length}`, ...indent(eventLines(), '  '));
      continue;
    }
    if (o.conditions === undefined) continue;
    if (events.length === 0) {
      failures.push(`${label}: no events came out (events went to: ${elsewhere()})`);
      continue;
    }
    let failed = false;
    o.conditions.forEach((condition, k) => {
      const reasons = events.map((e) => explain(condition, e));
      if (reasons.some((r) => r === undefined)) return;
      failed = true;
      failures.push(`${label}: ${conditionLabel(condition, k + 1)} holds for none of ${events.length} event(s)`);
      reasons.forEach((r, i) => {
        failures.push(...indent(events.length > 1 ? [`event ${i + 1}:`, ...indent(r!, '  ')] : r!, '  '));
      });
    });
    if (failed) failures.push(...indent(eventLines(), '  '));
  }
  return failures;
}

export interface TestRunReport {
  passed: number;
  failed: number;
  output: string;
}

/** Runs every test of `files`; the report text is what `fluxo test` prints. */
export async function runConfigTests(
  files: string[],
  components: ComponentRegistry,
  logLevel = 'silent',
): Promise<TestRunReport | undefined> {
  const loaded = await loadWithComponents(files, components);
  if (!loaded) return undefined;
  const problems: string[] = [];
  const raw = [...loaded.tests];
  for (const f of files) {
    for (const sibling of siblingTestFiles(f)) {
      const r = readTestFile(sibling, problems);
      if (r) raw.push(r);
    }
  }
  const { tests, problems: schemaProblems } = readTests(raw);
  problems.push(...schemaProblems);
  if (problems.length > 0) {
    process.stderr.write(
      `invalid tests (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${p}\n`).join('')}`,
    );
    return undefined;
  }
  const lines: string[] = [];
  let passed = 0;
  let failed = 0;
  for (const group of tests) {
    lines.push(`${group.file}: ${group.tests.length} test${group.tests.length === 1 ? '' : 's'}`);
    for (const test of group.tests) {
      let failures: string[];
      try {
        failures = runTest(test, loaded.config, components, logLevel);
      } catch (error) {
        failures = [`could not run: ${(error as Error).message}`];
      }
      if (failures.length === 0) {
        passed++;
        lines.push(`  ✓ ${test.name}`);
      } else {
        failed++;
        lines.push(`  ✗ ${test.name}`, ...indent(failures, '      '));
      }
    }
  }
  if (tests.length === 0)
    lines.push(`no tests in ${files.join(', ')} (add a tests: section or a sibling .tests.yaml file)`);
  else lines.push(`${passed + failed} test${passed + failed === 1 ? '' : 's'}: ${passed} passed, ${failed} failed`);
  return { passed, failed, output: `${lines.join('\n')}\n` };
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerTestCommand(program: Command, registry: ComponentRegistry): void {
  program
    .command('test')
    .description('run the unit tests of a config (its tests: section or FILE.tests.yaml) against its transforms')
    .addOption(
      new Option('-c, --config <file>', 'config file (YAML or JSON); repeat to merge several')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--log-level <level>', 'log level of the transforms under test')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'silent'])
        .default('silent'),
    )
    .addHelpText(
      'after',
      `
Tests insert events at a transform and check what another emits; no source or sink is started.
Exit status: 0 when every test passed, 1 when one failed or the config or tests are invalid.`,
    )
    .action(async (opts: { config: string[]; logLevel: string }) => {
      const paths = resolveConfigPaths(opts.config);
      const report = await runConfigTests(paths, registry, opts.logLevel);
      if (!report) {
        process.exitCode = 1;
        return;
      }
      process.stdout.write(report.output);
      process.exitCode = report.failed > 0 ? 1 : 0;
    });
}
