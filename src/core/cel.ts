import { Environment } from '@marcbachmann/cel-js';
import { z } from 'zod';
import type { Event } from './event.ts';

export type CompiledExpression = (event: Event) => unknown;

/**
 * One CEL environment for every expression in a config. Event fields are undeclared variables (dyn).
 * JSON numbers reach CEL as doubles, and strict CEL has no `double + int`: without the overloads below
 * `status + 1` or `n % 2 == 1` would fail on every event. They give JSON numbers the arithmetic users expect.
 */
const environment = new Environment({
  unlistedVariablesAreDyn: true,
  homogeneousAggregateLiterals: false,
  enableOptionalTypes: true,
});
const ARITHMETIC: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
  '%': (a, b) => a % b,
};
for (const [op, fn] of Object.entries(ARITHMETIC)) {
  environment.registerOperator(`double ${op} int`, (a: number, b: bigint) => fn(a, Number(b)));
  environment.registerOperator(`int ${op} double`, (a: bigint, b: number) => fn(Number(a), b));
}
environment.registerOperator('double % double', (a: number, b: number) => a % b);

const MENTIONS_EVENT = /\bevent\b/;

/**
 * Compiles a CEL expression once; the result is called per event with the event's fields as variables.
 * `event` names the whole event, for what plain field names cannot say: `has(event.status)` (CEL's has()
 * needs a selection) and fields named like CEL types (`event.bytes > 1000`). Only expressions that mention
 * `event` pay for the wrapper object.
 */
export function compileCel(source: string): CompiledExpression {
  const evaluate = environment.parse(source) as unknown as CompiledExpression;
  if (!MENTIONS_EVENT.test(source)) return evaluate;
  return (e) => evaluate(Object.create(e, { event: { value: e } }) as Event);
}

/** A CEL expression option: checked for syntax when the config is validated, so `fluxo validate` names the line. */
export function celExpression() {
  return z.string().superRefine((value, ctx) => {
    try {
      compileCel(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `invalid CEL expression: ${firstLine((error as Error).message)}` });
    }
  });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
