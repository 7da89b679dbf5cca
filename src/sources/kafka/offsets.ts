/** Offsets `[from, to)` of one partition handed to the pipeline in one batch. */
export interface OffsetRange {
  readonly from: bigint;
  readonly to: bigint;
  settled: boolean;
}

/**
 * The commit point of one partition: the end of the contiguous prefix of offsets whose batches every sink
 * settled. A batch settling before an earlier one does not move it; a batch that failed leaves a hole that only
 * a re-read of those offsets fills. Re-reads (after a rebalance or a reopened stream) may overlap earlier
 * ranges: whichever copy settles first counts.
 */
export class PartitionOffsets {
  /** Next offset to commit once it is past `committed`: everything below it was delivered. */
  next: bigint;
  /** What the group's coordinator last confirmed for this partition. */
  committed: bigint;
  private ranges: OffsetRange[] = [];

  constructor(
    readonly topic: string,
    readonly partition: number,
    start: bigint,
  ) {
    this.next = start;
    this.committed = start;
  }

  /** Messages of this partition in batches not settled yet. */
  get pending(): number {
    let n = 0;
    for (const r of this.ranges) if (!r.settled) n += Number(r.to - r.from);
    return n;
  }

  add(from: bigint, to: bigint): OffsetRange {
    const range: OffsetRange = { from, to, settled: false };
    this.ranges.push(range);
    return range;
  }

  /** Marks `range` settled (delivered) or drops it (failed: its offsets must be read again). */
  settle(range: OffsetRange, delivered: boolean): void {
    if (delivered) range.settled = true;
    else this.ranges = this.ranges.filter((r) => r !== range);
    this.advance();
  }

  private advance(): void {
    for (let moved = true; moved; ) {
      moved = false;
      for (const r of this.ranges) {
        if (r.settled && r.from <= this.next && r.to > this.next) {
          this.next = r.to;
          moved = true;
        }
      }
    }
    // Settled ranges wholly below the commit point say nothing more; pending ones still count as held.
    this.ranges = this.ranges.filter((r) => !r.settled || r.to > this.next);
  }
}
