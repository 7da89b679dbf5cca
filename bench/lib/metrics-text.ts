/** Reading Fluxo's /metrics (Prometheus text) in the bench, without a client library. */

/** The sum over the series of `name` whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

/**
 * Quantiles of `fluxo_end_to_end_latency_seconds` for one sink (receipt at the source → the sink's write
 * confirmed: for a file sink with `sync: true`, written and fdatasynced, so an upper bound of receive → durable).
 * One observation per source batch (acknowledgement), not per event. A histogram only tells the bucket: `_le_s` is the bucket's upper bound, `_s` a linear guess inside it.
 */
export function latencyQuantiles(text: string, componentId: string): Record<string, number> | undefined {
  const buckets = new Map<number, number>();
  const re = /^fluxo_end_to_end_latency_seconds_bucket\{([^}]*)\} (\S+)$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m || !m[1]!.includes(`component_id="${componentId}"`)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const quantile = (q: number) => {
    const goal = q * total;
    let lower = 0;
    let below = 0;
    for (const [bound, count] of sorted) {
      if (count >= goal) {
        const upper = Number.isFinite(bound) ? bound : lower;
        const inside = count - below;
        return { le: bound, est: inside > 0 ? lower + ((goal - below) / inside) * (upper - lower) : upper };
      }
      lower = bound;
      below = count;
    }
    return { le: Number.POSITIVE_INFINITY, est: lower };
  };
  const p50 = quantile(0.5);
  const p99 = quantile(0.99);
  const r = (x: number) => Math.round(x * 10_000) / 10_000;
  return {
    latency_batches: total,
    latency_p50_s: r(p50.est),
    latency_p50_le_s: p50.le,
    latency_p99_s: r(p99.est),
    latency_p99_le_s: p99.le,
  };
}
