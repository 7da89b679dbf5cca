import { basename } from 'node:path';
import { Acknowledgement, type AckStatus, type Batch } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import { HeadQueue } from '../head-queue.ts';
import { ReadyWatchers } from '../ready-watchers.ts';
import { errorText } from './fs.ts';
import type { PendingRecord } from './pending.ts';
import { decodePayload, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_VERSION, type Slab } from './record.ts';
import type { Segment } from './scan.ts';
import { SegmentReader } from './segment-reader.ts';

/** Records read back from disk ahead of the sink. */
const PREFETCH_BYTES = 4 * 1024 * 1024;

interface ReadyRecord {
  id: number;
  events: Event[];
  /** The payload as JSON lines (format version 2), for Batch.ndjson. */
  ndjson: Buffer | undefined;
  /** The slab `ndjson` lives in, released once the record is settled or dropped. */
  slab: Slab | undefined;
  /** A record handed out before it is written: its id is given by its commit, if it comes. */
  pending?: PendingRecord;
  count: number;
  /** Encoded size (header and payload). */
  size: number;
  receivedAt: number;
  /**
   * Damage skipped while reading back: no batch, only its bytes (and the events its header claimed, when the
   * record was whole) to take off the buffer's counts once the records before it are acknowledged.
   */
  skipped?: true;
}

const UNSETTLED = 0;
const ACKED = 1;
const FAILED = 2;

interface InFlight {
  id: number;
  count: number;
  size: number;
  state: typeof UNSETTLED | typeof ACKED | typeof FAILED;
  /** Released (and cleared) when the record settles. */
  slab: Slab | undefined;
  pending: PendingRecord | undefined;
}

const NO_EVENTS: Event[] = [];

/** What the delivery side needs to know about the log and to tell the buffer. */
export interface DeliveryContext {
  /** The log's segments, oldest first (shared with the writer, which appends). */
  readonly segments: Segment[];
  /** The segment being written, which may still grow. */
  activeSegment(): Segment | undefined;
  /** Closed, and every admitted record written: once the sink has everything, take() answers null. */
  upstreamDone(): boolean;
  /** The acknowledged position moved to `ackedId`, freeing `events` and `bytes`. */
  advanced(ackedId: number, events: number, bytes: number): void;
  /** The queue keeps a record's encoded bytes in memory (see RecordEncoder). */
  retain(slab: Slab | undefined): void;
  /** A record kept in memory no longer needs its encoded bytes. */
  release(slab: Slab | undefined): void;
  /** The sink delivered a record handed out before it was written. */
  delivered(record: PendingRecord): void;
  /** A handed-out record settled (or reading stopped): the buffer may be able to finish closing. */
  settled(): void;
  /** Damage found reading back, not reported by the scan at open: `lostRecords` the sink will not get. */
  damaged(segment: string, offset: number, reason: string, lostRecords: number): void;
  readFailed(error: unknown): void;
}

/**
 * The sink's side of the disk buffer: hands records out in log order, each as a batch with its own
 * acknowledgement, and advances the acknowledged position over the contiguous prefix of acknowledged records
 * (the sink may settle out of order with concurrency > 1).
 *
 * Records are handed over from memory while they fit in `memoryBytes`: with a write delay as soon as they are
 * admitted (`admitted`, before they are written), otherwise once written (`committed`). Past that (an outage, a
 * replay at start) the records are read back from disk, from `cold` on, until the reader has caught up with the
 * writer; then memory takes over again. Switching happens in the same turn as a commit, so no record is missed
 * or read twice. Once a record goes the way of its commit, the ones after it do too until it is committed, so
 * the sink gets everything in admission order.
 */
export class DeliveryQueue {
  /** Records for the sink, in order. */
  private readonly ready = new HeadQueue<ReadyRecord>();
  private readyBytes = 0;
  private readyEvents = 0;
  private readonly readyWatchers = new ReadyWatchers();
  private cold: { segment: Segment; offset: number } | undefined;
  private coldReader: SegmentReader | undefined;
  private lastQueuedId: number;
  /** Damage read back whose lost records are counted once the next record (or segment) shows the next id. */
  private unsettledDamage: { segment: string; offset: number; reason: string; floor: number } | undefined;
  private pumpingNow = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly takers: { resolve: (batches: Batch[] | null) => void; max: number }[] = [];
  /** Records handed out, in order, until the acknowledged position passes them. */
  private readonly inflight = new HeadQueue<InFlight>();
  private unsettledCount = 0;
  /** Admitted records that will reach the sink through their commit (not handed out before). */
  private awaitingCommit = 0;
  private serving = true;
  /** Damage already reported (by the scan at open): `segment:offset`. */
  readonly knownDamage = new Set<string>();
  ackedId: number;
  /** Ids of records delivered during their write, beyond the acknowledged position (ackLate). */
  private readonly lateAcks = new Set<number>();
  /** The last record handed to the sink. */
  readId: number;

  constructor(
    private readonly log: DeliveryContext,
    private readonly memoryBytes: number,
    /** Everything up to here is acknowledged (from the ledger). */
    ackedId: number,
    /** The first record to read from disk (the replay), if any. */
    firstUnacked: { segment: Segment; offset: number } | undefined,
    /**
     * Ids no record holds: after the last record of the recovered log, up to the writer's first new id (a tail
     * lost to damage, already reported). Once every record before them is acknowledged, so are they: the
     * ledger then no longer says they were written and not acknowledged, and the next start reports nothing.
     */
    private readonly idsWithoutRecords: { after: number; through: number } | undefined = undefined,
  ) {
    this.ackedId = this.readId = this.lastQueuedId = ackedId;
    this.cold = firstUnacked ? { ...firstUnacked } : undefined;
    if (!this.cold && this.skipIdsWithoutRecords()) this.readId = this.lastQueuedId = this.ackedId;
  }

  /** Records handed out and not yet settled. */
  get unsettled(): number {
    return this.unsettledCount;
  }

  /** A read from disk is under way. */
  get pumping(): boolean {
    return this.pumpingNow;
  }

  /** Whether the reader is behind the writer (the segment it is in must not be deleted). */
  get readingSegment(): Segment | undefined {
    return this.cold?.segment;
  }

  /** Every record queued so far was handed out and acknowledged (or skipped as damaged). */
  get allAcknowledged(): boolean {
    return this.cold === undefined && this.ready.length === 0 && this.inflight.length === 0;
  }

  /** Nothing left to hand out and nothing more coming: take() answers null. */
  get exhausted(): boolean {
    return !this.serving || (this.log.upstreamDone() && this.cold === undefined && this.ready.length === 0);
  }

  take(maxEvents: number): Promise<Batch[] | null> {
    if (!this.serving) return Promise.resolve(null);
    if (this.ready.length > 0) {
      const out = this.dequeue(maxEvents);
      if (out.length > 0) return Promise.resolve(out);
    }
    if (this.exhausted) return Promise.resolve(null);
    const taken = new Promise<Batch[] | null>((resolve) => this.takers.push({ resolve, max: maxEvents }));
    this.pump();
    return taken;
  }

  poll(maxEvents: number): Batch[] {
    return this.serving ? this.dequeue(maxEvents, true) : [];
  }

  /** See SinkBuffer.whenReady; a backlog on disk counts as ready (the sink is behind: no reason to wait). */
  whenReady(minEvents: number, ready: () => void): () => void {
    if (!this.serving || this.cold !== undefined || this.readyEvents >= minEvents) {
      ready();
      return () => {};
    }
    return this.readyWatchers.add(minEvents, ready);
  }

  /**
   * A record was admitted. With `early` (a write delay), hands it to the sink at once, before it is written,
   * when it fits in memory and nothing admitted before it is still to come through its commit. Returns whether
   * it did; if not, the record reaches the sink through committed().
   */
  admitted(record: PendingRecord, early: boolean): boolean {
    const size = record.frame.length;
    if (
      !early ||
      !this.serving ||
      this.cold !== undefined ||
      this.awaitingCommit > 0 ||
      this.readyBytes + size > this.memoryBytes
    ) {
      this.awaitingCommit++;
      return false;
    }
    record.markHandedOut();
    this.keepInMemory(record, true);
    this.handOut();
    return true;
  }

  /** A record that was to come through its commit never will (the writer gave it up). */
  abandoned(record: PendingRecord): void {
    if (!record.handedEarly) this.awaitingCommit--;
  }

  /**
   * A record was written (and fsynced) at `offset` of `segment`. One not handed out yet is kept in memory for the
   * sink while it fits (its slab retained until it settles), or read back from disk from here on.
   */
  committed(record: PendingRecord, segment: Segment, offset: number): void {
    if (record.handedEarly) {
      if (this.cold === undefined) this.lastQueuedId = record.id;
      if (record.ackedWithoutId) this.ackLate(record.id);
      return;
    }
    this.awaitingCommit--;
    if (!this.serving) return;
    const size = record.frame.length;
    if (this.cold === undefined && this.readyBytes + size <= this.memoryBytes) {
      this.keepInMemory(record, false);
      this.lastQueuedId = record.id;
    } else if (this.cold === undefined) {
      // From here on the sink reads from disk until it has caught up with the writer.
      this.cold = { segment, offset };
      this.readyWatchers.all();
    }
  }

  /**
   * Queues an admitted record for the sink from memory, its slab retained until it settles: handed out `early`
   * (id 0, given by a later commit) or just written.
   */
  private keepInMemory(record: PendingRecord, early: boolean): void {
    const size = record.frame.length;
    this.log.retain(record.slab);
    this.ready.push({
      id: early ? 0 : record.id,
      events: record.events,
      ndjson: record.frame.subarray(RECORD_HEADER_BYTES),
      slab: record.slab,
      pending: early ? record : undefined,
      count: record.count,
      size,
      receivedAt: record.batch.ack.receivedAt,
    });
    this.readyBytes += size;
    this.readyEvents += record.count;
    this.readyWatchers.check(this.readyEvents);
  }

  /** Hands out what is ready, starts reading when behind; answers null to waiting takers once exhausted. */
  serve(): void {
    this.handOut();
    if (this.takers.length > 0 && this.exhausted) {
      for (const t of this.takers.splice(0)) t.resolve(null);
    }
    this.pump();
  }

  /**
   * Hands out nothing more. Records read but not handed out stay on disk, unacknowledged: whoever opens the
   * buffer next replays them.
   */
  stop(): void {
    if (!this.serving) return;
    this.serving = false;
    for (const r of this.ready.clear()) this.log.release(r.slab);
    this.readyBytes = 0;
    this.readyEvents = 0;
    this.cold = undefined;
    this.readyWatchers.all();
    clearTimeout(this.retryTimer);
    for (const t of this.takers.splice(0)) t.resolve(null);
  }

  async close(): Promise<void> {
    this.stop();
    this.countDamage(this.lastQueuedId + 2);
    await this.closeColdReader();
  }

  /** Gives waiting takers what is ready; skipped damage alone gives nobody anything. */
  private handOut(): void {
    while (this.takers.length > 0 && this.ready.length > 0) {
      const out = this.dequeue(this.takers[0]!.max);
      if (out.length === 0) break;
      this.takers.shift()!.resolve(out);
    }
  }

  /** Up to `maxEvents` events; the first record goes out whatever its size unless `strict`. */
  private dequeue(maxEvents: number, strict = false): Batch[] {
    const out: Batch[] = [];
    let n = 0;
    let skipped = false;
    for (let r = this.ready.at(0); r !== undefined; r = this.ready.at(0)) {
      if (r.skipped) {
        // Settled at once, in log order: the acknowledged position moves over it with the records around it.
        this.ready.shift();
        this.inflight.push({
          id: r.id,
          count: r.count,
          size: r.size,
          state: ACKED,
          slab: undefined,
          pending: undefined,
        });
        skipped = true;
        continue;
      }
      if ((strict || out.length > 0) && n + r.count > maxEvents) break;
      this.ready.shift();
      this.readyBytes -= r.size;
      this.readyEvents -= r.count;
      n += r.count;
      const entry: InFlight = {
        id: r.id,
        count: r.count,
        size: r.size,
        state: UNSETTLED,
        slab: r.slab,
        pending: r.pending,
      };
      this.inflight.push(entry);
      this.unsettledCount++;
      if (r.id > 0) this.readId = r.id;
      out.push({
        events: r.events,
        ndjson: r.ndjson,
        bytes: r.size - RECORD_HEADER_BYTES,
        ack: new Acknowledgement((status) => this.settle(entry, status), r.receivedAt),
      });
    }
    if (skipped) this.advance();
    this.pump();
    return out;
  }

  private settle(entry: InFlight, status: AckStatus): void {
    // A failed share (shutdown before delivery) stays unacknowledged: the next start replays it.
    entry.state = status === 'delivered' ? ACKED : FAILED;
    this.unsettledCount--;
    // The sink is done with the record's bytes.
    this.log.release(entry.slab);
    entry.slab = undefined;
    if (status === 'delivered' && entry.pending) this.log.delivered(entry.pending);
    this.advance();
    this.log.settled();
  }

  /** Moves the acknowledged position over the acknowledged prefix of what was handed out. */
  private advance(): void {
    let events = 0;
    let bytes = 0;
    for (let e = this.inflight.at(0); e?.state === ACKED; e = this.inflight.at(0)) {
      this.inflight.shift();
      // A record delivered before its commit completed is not in the log (or not yet): no position to move to.
      // Its id is 0 until then (PendingRecord.id).
      // A record delivered while its write is under way gets its id after this: see ackLate.
      const id = e.pending ? e.pending.id : e.id;
      if (e.pending && id === 0 && e.pending.state === 'delivered') e.pending.ackedWithoutId = true;
      if (id > this.ackedId) this.ackedId = id;
      events += e.count;
      bytes += e.size;
    }
    const before = this.ackedId;
    this.takeLateAcks();
    this.skipIdsWithoutRecords();
    if (bytes > 0 || this.ackedId !== before) this.log.advanced(this.ackedId, events, bytes);
  }

  private skipIdsWithoutRecords(): boolean {
    const gap = this.idsWithoutRecords;
    if (!gap || this.ackedId < gap.after || this.ackedId >= gap.through) return false;
    this.ackedId = gap.through;
    return true;
  }

  /**
   * A record the sink delivered during its write got its id `id` from the commit after the acknowledged
   * position had passed it (its share was already counted off). The log's ids are consecutive, so the position
   * moves onto it once every id before it is acknowledged; until then it waits in `lateAcks`. Without this the
   * position stays short of it, and whoever opens the buffer next (a reload's new buffer, a restart) replays a
   * record the sink delivered.
   */
  private ackLate(id: number): void {
    if (id <= this.ackedId) return;
    this.lateAcks.add(id);
    const before = this.ackedId;
    this.takeLateAcks();
    if (this.ackedId !== before) this.log.advanced(this.ackedId, 0, 0);
  }

  private takeLateAcks(): void {
    if (this.lateAcks.size === 0) return;
    while (this.lateAcks.delete(this.ackedId + 1)) this.ackedId++;
    for (const id of this.lateAcks) if (id <= this.ackedId) this.lateAcks.delete(id);
  }

  private shouldRead(): boolean {
    return (
      this.cold !== undefined &&
      this.serving &&
      this.retryTimer === undefined &&
      (this.takers.length > 0 || this.readyBytes < Math.min(PREFETCH_BYTES, this.memoryBytes))
    );
  }

  /** Reads the backlog from disk into `ready`, ahead of the sink, while there is one. */
  private pump(): void {
    if (this.pumpingNow || !this.shouldRead()) return;
    this.pumpingNow = true;
    void this.pumpLoop().finally(() => {
      this.pumpingNow = false;
      // serve() pumps again when a take() came while the loop was ending.
      this.serve();
      this.log.settled();
    });
  }

  private async pumpLoop(): Promise<void> {
    try {
      while (this.shouldRead()) {
        await this.readCold();
        this.handOut();
      }
    } catch (error) {
      this.log.readFailed(error);
      await this.closeColdReader();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.serve();
      }, 1000);
    }
  }

  private async readCold(): Promise<void> {
    const cold = this.cold!;
    const segment = cold.segment;
    if (cold.offset >= segment.size) {
      // Decided in the same turn as any commit, so no record slips between disk and memory.
      const next = this.log.segments[this.log.segments.indexOf(segment) + 1];
      // Damage running to the end of a segment ends where the next begins (its name is its first id); with no
      // segment after it, the one record being read is counted.
      this.countDamage(next ? next.firstId : this.lastQueuedId + 2);
      if (next === undefined || segment === this.log.activeSegment()) this.cold = undefined;
      else this.cold = { segment: next, offset: SEGMENT_HEADER_BYTES };
      await this.closeColdReader();
      return;
    }
    let reader = this.coldReader;
    if (!reader || reader.path !== segment.path || reader.position !== cold.offset) {
      await reader?.close();
      reader = new SegmentReader(segment.path, cold.offset, segment.size, this.lastQueuedId);
      this.coldReader = reader;
    }
    reader.end = segment.size;
    for (let budget = PREFETCH_BYTES; budget > 0 && this.serving; ) {
      const r = await reader.next();
      if (r.kind === 'end') break;
      if (r.kind === 'corrupt') {
        this.damaged(segment, r.offset, r.reason);
        this.skip(reader.position - r.offset, 0);
        cold.offset = reader.position;
        continue;
      }
      const h = r.header;
      this.countDamage(h.id);
      let events: Event[];
      try {
        events = decodePayload(r.buffer, r.at, h, segment.version);
      } catch (error) {
        this.damaged(segment, r.offset, `payload unreadable: ${errorText(error)}`, 1);
        this.skip(h.size, h.count);
        this.lastQueuedId = h.id;
        cold.offset = reader.position;
        continue;
      }
      // The reader reuses its buffer: a record read back gets a copy of its lines.
      const ndjson =
        segment.version === SEGMENT_VERSION
          ? Buffer.from(r.buffer.subarray(r.at + RECORD_HEADER_BYTES, r.at + h.size))
          : undefined;
      this.ready.push({
        id: h.id,
        events,
        ndjson,
        slab: undefined,
        count: h.count,
        size: h.size,
        receivedAt: h.writtenAt,
      });
      this.readyBytes += h.size;
      this.readyEvents += h.count;
      this.lastQueuedId = h.id;
      cold.offset = reader.position;
      budget -= h.size;
    }
  }

  /**
   * Queues the accounting of skipped damage. The events of a record whose header is not trustworthy are not
   * known: the buffer sets its counts to zero once everything is acknowledged, which clears that remainder.
   */
  private skip(bytes: number, events: number): void {
    if (bytes <= 0) return;
    this.ready.push({
      id: this.lastQueuedId,
      events: NO_EVENTS,
      ndjson: undefined,
      slab: undefined,
      count: events,
      size: bytes,
      receivedAt: 0,
      skipped: true,
    });
  }

  /**
   * Reports damage not known from the scan; with `lostRecords` at once (a whole record whose payload does not
   * read), otherwise once the next good record tells how many ids the damage took (countDamage).
   */
  private damaged(segment: Segment, offset: number, reason: string, lostRecords?: number): void {
    const name = basename(segment.path);
    const key = `${name}:${offset}`;
    if (this.knownDamage.has(key)) return;
    this.knownDamage.add(key);
    if (lostRecords !== undefined) {
      this.log.damaged(name, offset, reason, lostRecords);
      return;
    }
    this.countDamage(this.lastQueuedId + 2);
    // Ids before the segment's first were in earlier segments, those up to lastQueuedId were read: not lost.
    this.unsettledDamage = { segment: name, offset, reason, floor: Math.max(this.lastQueuedId, segment.firstId - 1) };
  }

  /** Reports the pending damage with the records it took: the ids after its floor and before `nextId`. */
  private countDamage(nextId: number): void {
    const d = this.unsettledDamage;
    if (d === undefined) return;
    this.unsettledDamage = undefined;
    this.log.damaged(d.segment, d.offset, d.reason, Math.max(0, nextId - d.floor - 1));
  }

  private async closeColdReader(): Promise<void> {
    const reader = this.coldReader;
    this.coldReader = undefined;
    await reader?.close().catch(() => {});
  }
}
