import type { ErrorCode } from '../core/error-codes.ts';
import { DEAD_LETTER_ID } from '../core/pipeline-config.ts';
import { didYouMean } from './errors.ts';

export interface GraphNode {
  id: string;
  kind: 'source' | 'transform' | 'sink';
  inputs: readonly string[];
  /** Named outputs (route); addressable as `<id>.<name>`. */
  outputs: readonly string[];
}

export interface GraphProblem {
  code: ErrorCode;
  /** The component the problem is reported at. */
  id: string;
  /** Index into its `inputs`, when the problem is one input. */
  inputIndex?: number;
  message: string;
}

/**
 * Checks the wiring of a pipeline: inputs that name nothing, components that read from a sink, cycles,
 * and sources nobody reads (a warning: their events would be discarded).
 */
export function checkGraph(nodes: readonly GraphNode[]): { problems: GraphProblem[]; warnings: GraphProblem[] } {
  const problems: GraphProblem[] = [];
  const warnings: GraphProblem[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const outputs = new Set<string>([DEAD_LETTER_ID]);
  for (const n of nodes) {
    if (n.kind === 'sink') continue;
    outputs.add(n.id);
    for (const o of n.outputs) outputs.add(`${n.id}.${o}`);
  }
  const consumed = new Set<string>();
  for (const n of nodes) {
    n.inputs.forEach((input, inputIndex) => {
      consumed.add(input.split('.')[0]!);
      if (outputs.has(input)) return;
      const target = byId.get(input) ?? byId.get(input.split('.')[0]!);
      let message: string;
      if (target?.kind === 'sink') message = `input "${input}" is a sink; inputs name sources or transforms`;
      else if (target && input.includes('.'))
        message = `input "${input}": ${target.id} has no output "${input.slice(target.id.length + 1)}"${
          target.outputs.length ? ` (outputs: ${target.outputs.join(', ')})` : ''
        }`;
      else if (input === n.id) message = `input "${input}" is the component itself`;
      else {
        message = `unknown input "${input}": no source or transform has this id${didYouMean(input, outputs)}`;
      }
      problems.push({ code: 'FLUXO_CONFIG_UNKNOWN_INPUT', id: n.id, inputIndex, message });
    });
  }
  for (const cycle of findCycles(nodes, byId)) {
    problems.push({
      code: 'FLUXO_CONFIG_CYCLE',
      id: cycle[0]!,
      message: `inputs form a cycle: ${[...cycle, cycle[0]].join(' -> ')}`,
    });
  }
  for (const n of nodes) {
    if (n.kind === 'source' && !consumed.has(n.id)) {
      warnings.push({
        code: 'FLUXO_CONFIG_UNUSED_SOURCE',
        id: n.id,
        message: `source "${n.id}" is not an input of any transform or sink; its events would be discarded`,
      });
    }
  }
  return { problems, warnings };
}

function findCycles(nodes: readonly GraphNode[], byId: Map<string, GraphNode>): string[][] {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[][] = [];
  const stack: string[] = [];
  const visitNode = (id: string) => {
    const s = state.get(id);
    if (s === 'done') return;
    if (s === 'visiting') {
      // The stack follows inputs upstream; reversed, it reads in the direction events flow, starting at `id`.
      const upstream = stack.slice(stack.indexOf(id));
      cycles.push([id, ...upstream.slice(1).reverse()]);
      return;
    }
    state.set(id, 'visiting');
    stack.push(id);
    for (const input of byId.get(id)?.inputs ?? []) {
      const upstream = byId.get(input) ?? byId.get(input.split('.')[0]!);
      if (upstream && upstream.kind === 'transform') visitNode(upstream.id);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const n of nodes) if (n.kind === 'transform') visitNode(n.id);
  return cycles;
}
