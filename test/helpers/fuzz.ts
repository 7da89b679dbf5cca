/**
 * fast-check parameters for the fuzz tests: `n` runs per property in `npm test`; FLUXO_FUZZ_RUNS (set by
 * scripts/fuzz.js) scales every property to that count, and FLUXO_FUZZ_SEED replays a failure fast-check reported.
 */
export function fuzzRuns(n: number): { numRuns: number; includeErrorInReport: true; seed?: number } {
  const runs = Number(process.env.FLUXO_FUZZ_RUNS ?? 0);
  const seed = process.env.FLUXO_FUZZ_SEED;
  return {
    numRuns: runs > 0 ? runs : n,
    includeErrorInReport: true,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
  };
}
