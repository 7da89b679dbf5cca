/**
 * Counters and latency percentiles of a simulation. Latencies go into logarithmic buckets (16 per power of
 * two, so a percentile is within ~4.5% of the true value) from 1 µs up: constant memory however many events.
 */
const BUCKETS_PER_OCTAVE = 16;
const OCTAVES = 40; // 1 µs · 2^40 ≈ 12.7 days
const BUCKETS = BUCKETS_PER_OCTAVE * OCTAVES;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private max = 0;

  /** Records `weight` samples of `ms` milliseconds (a batch of `weight` events acknowledged together). */
  record(ms: number, weight = 1): void {
    if (weight <= 0) return;
    const us = Math.max(1, ms * 1000);
    const bucket = Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE));
    this.counts[bucket]! += weight;
    this.total += weight;
    if (ms > this.max) this.max = ms;
  }

  get count(): number {
    return this.total;
  }

  /** Adds `other`'s samples to this one. */
  merge(other: LatencyHistogram): void {
    for (let b = 0; b < BUCKETS; b++) this.counts[b]! += other.counts[b]!;
    this.total += other.total;
    if (other.max > this.max) this.max = other.max;
  }

  /** The non-empty buckets, in order: upper bound in milliseconds and count. */
  buckets(): { upperMs: number; count: number }[] {
    const out: { upperMs: number; count: number }[] = [];
    for (let b = 0; b < BUCKETS; b++) {
      if (this.counts[b]! > 0)
        out.push({ upperMs: 2 ** ((b + 1) / BUCKETS_PER_OCTAVE) / 1000, count: this.counts[b]! });
    }
    return out;
  }

  /** The `p`-th percentile (0–100) in milliseconds, or undefined without samples. */
  percentile(p: number): number | undefined {
    if (this.total === 0) return undefined;
    if (p >= 100) return this.max;
    const rank = (p / 100) * this.total;
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank && this.counts[b]! > 0) {
        // the bucket's upper bound, never above the largest sample
        return Math.min(this.max, 2 ** ((b + 1) / BUCKETS_PER_OCTAVE) / 1000);
      }
    }
    return this.max;
  }
}

/** What senders report; see Sender in sender.ts. */
export interface SimulationStats {
  /** `n` lines were handed to the transport (written to the socket, a request body sent). */
  sent(n: number, sinceMs: number): void;
  /** `n` lines were acknowledged by the target; `sinceMs` is when they were first sent. */
  acknowledged(n: number, sinceMs: number): void;
  /** A failure (refused request, reset connection, retry), by a short reason for the report. */
  error(reason: string): void;
}

/** One interval of the timeline: what happened between `startMs` and the next interval's start. */
export interface TimelineInterval {
  startMs: number;
  sent: number;
  acknowledged: number;
  errors: number;
  sendLatency: LatencyHistogram;
  ackLatency: LatencyHistogram;
}

/** Most intervals the timeline keeps: past it, neighbours merge and the interval doubles (memory stays bounded). */
const TIMELINE_MAX_INTERVALS = 240;

/** Counters and latencies per interval of the run (1 s at first), for the HTML report's charts. */
export class Timeline {
  intervalMs = 1000;
  readonly intervals: TimelineInterval[] = [];

  constructor(readonly startMs: number = Date.now()) {}

  at(now: number): TimelineInterval {
    let i = Math.max(0, Math.floor((now - this.startMs) / this.intervalMs));
    while (i >= TIMELINE_MAX_INTERVALS) {
      this.coarsen();
      i = Math.max(0, Math.floor((now - this.startMs) / this.intervalMs));
    }
    while (this.intervals.length <= i) {
      this.intervals.push({
        startMs: this.startMs + this.intervals.length * this.intervalMs,
        sent: 0,
        acknowledged: 0,
        errors: 0,
        sendLatency: new LatencyHistogram(),
        ackLatency: new LatencyHistogram(),
      });
    }
    return this.intervals[i]!;
  }

  private coarsen(): void {
    const merged: TimelineInterval[] = [];
    for (let i = 0; i < this.intervals.length; i += 2) {
      const a = this.intervals[i]!;
      const b = this.intervals[i + 1];
      if (b) {
        a.sent += b.sent;
        a.acknowledged += b.acknowledged;
        a.errors += b.errors;
        a.sendLatency.merge(b.sendLatency);
        a.ackLatency.merge(b.ackLatency);
      }
      merged.push(a);
    }
    this.intervals.splice(0, this.intervals.length, ...merged);
    this.intervalMs *= 2;
  }
}

export class SimulationCounters implements SimulationStats {
  generated = 0;
  sentLines = 0;
  acknowledgedLines = 0;
  errors = 0;
  readonly errorReasons = new Map<string, number>();
  /** Send-side latency: from when the web server wrote the line to when it was handed to the transport. */
  readonly sendLatency = new LatencyHistogram();
  /** From the first send to the acknowledgement, for protocols that have one. */
  readonly ackLatency = new LatencyHistogram();
  /** The same, per second of the run. */
  readonly timeline = new Timeline();

  sent(n: number, sinceMs: number): void {
    const now = Date.now();
    this.sentLines += n;
    this.sendLatency.record(now - sinceMs, n);
    const i = this.timeline.at(now);
    i.sent += n;
    i.sendLatency.record(now - sinceMs, n);
  }

  acknowledged(n: number, sinceMs: number): void {
    const now = Date.now();
    this.acknowledgedLines += n;
    this.ackLatency.record(now - sinceMs, n);
    const i = this.timeline.at(now);
    i.acknowledged += n;
    i.ackLatency.record(now - sinceMs, n);
  }

  error(reason: string): void {
    this.timeline.at(Date.now()).errors++;
    this.errors++;
    this.errorReasons.set(reason, (this.errorReasons.get(reason) ?? 0) + 1);
  }
}
