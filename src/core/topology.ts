/**
 * The topology runtime, by idea: `topology/outlet.ts` (fan-out and taps), `topology/dead-letter.ts` (the dead
 * letter output), `topology/nodes.ts` (how a batch passes a transform or enters a sink), `topology/build.ts`
 * (components from a config) and `topology/topology.ts` (start, stop, reload, observe).
 */
export type { TapListener } from './topology/outlet.ts';
export type { ComponentEndpoint, TopologyOptions, TopologyState } from './topology/topology.ts';
export { Topology } from './topology/topology.ts';
