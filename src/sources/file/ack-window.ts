import type { AckStatus } from '../../core/ack.ts';

const PENDING = 0;
const DELIVERED = 1;
const FAILED = 2;
const ABANDONED = 3;

/** One emitted batch of a file: the bytes [start, end) it accounts for. */
export class WindowEntry {
  state = PENDING;
  constructor(
    readonly start: number,
    readonly end: number,
  ) {}

  get pending(): boolean {
    return this.state === PENDING;
  }
}

/**
 * The batches of one file in flight, in the order they were read. Batches settle in any order (fan-out,
 * several sinks, retries); the checkpoint moves only to the end of the longest prefix that is delivered,
 * so a restart never skips a line some sink has not confirmed. A failed batch stops the prefix for good:
 * the reader rewinds to its start (rewind()) and reads it again.
 */
export class AckWindow {
  private entries: WindowEntry[] = [];
  private head = 0;
  private failures = 0;

  /** `committed`: the checkpointed offset, where every earlier line was delivered. */
  constructor(public committed: number) {}

  /** Batches emitted and not settled yet. */
  get inFlight(): number {
    let n = 0;
    for (let i = this.head; i < this.entries.length; i++) if (this.entries[i]!.state === PENDING) n++;
    return n;
  }

  /** A failed batch waits for rewind(). */
  get failed(): boolean {
    return this.failures > 0;
  }

  /** Records a batch covering [start, end); `start` is the previous batch's end. */
  open(start: number, end: number): WindowEntry {
    const entry = new WindowEntry(start, end);
    this.entries.push(entry);
    return entry;
  }

  /**
   * Settles a batch; returns true when the committed offset moved. Settling an entry twice or one that
   * rewind() abandoned changes nothing.
   */
  settle(entry: WindowEntry, status: AckStatus): boolean {
    if (entry.state !== PENDING) return false;
    if (status === 'failed') {
      entry.state = FAILED;
      this.failures++;
      return false;
    }
    entry.state = DELIVERED;
    return this.advance();
  }

  /**
   * After a failure: abandons the first failed batch and every later one (their outcome no longer matters,
   * they are read again) and returns the offset to read from, the failed batch's start, and how many of the
   * abandoned batches were still pending. Undefined when nothing failed.
   */
  rewind(): { from: number; abandonedPending: number } | undefined {
    if (this.failures === 0) return undefined;
    let i = this.head;
    while (i < this.entries.length && this.entries[i]!.state !== FAILED) i++;
    const from = this.entries[i]!.start;
    let abandonedPending = 0;
    for (let j = i; j < this.entries.length; j++) {
      if (this.entries[j]!.state === PENDING) abandonedPending++;
      this.entries[j]!.state = ABANDONED;
    }
    this.entries.length = i;
    this.failures = 0;
    return { from, abandonedPending };
  }

  private advance(): boolean {
    const entries = this.entries;
    let moved = false;
    while (this.head < entries.length && entries[this.head]!.state === DELIVERED) {
      this.committed = entries[this.head]!.end;
      this.head++;
      moved = true;
    }
    if (this.head > 64 && this.head * 2 > entries.length) {
      this.entries = entries.slice(this.head);
      this.head = 0;
    }
    return moved;
  }
}
