import { randomBytes, randomFillSync } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * An event is a plain JSON object. Sources set `message`, `timestamp`, `host`, `source_type` and `_id`.
 * Events are immutable once emitted: fan-out shares one array between consumers, so a transform that
 * changes an event builds a new object instead of writing to the one it received.
 */
export type Event = Record<string, unknown>;

export const HOSTNAME = hostname();

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The time of receipt a source stamps on events: Date.now() (or a time it was given), with its ISO-8601 form
 * formatted at most once per millisecond, since a busy source stamps many batches within one.
 */
export class ReceiptClock {
  private ms = -1;
  /** The ISO form of the last now(). */
  iso = '';

  now(ms: number = Date.now()): number {
    if (ms !== this.ms) {
      this.ms = ms;
      this.iso = new Date(ms).toISOString();
    }
    return ms;
  }
}

/**
 * UUIDv7 ids, cheap enough to make one per event: the 48-bit millisecond time and 12 random bits are
 * formatted once per millisecond; the tail is a per-process random 30 bits plus a 32-bit counter, so ids
 * made in one process never collide and ids of different processes collide only by chance (2^-42 per ms).
 */
export class EventIdGenerator {
  private lastMs = -1;
  private prefix = '';
  private counter = 0;
  private readonly processTail: string;

  constructor() {
    const r = randomBytes(4);
    // variant 10xx in the top bits of the fourth group, then 14 random bits; 16 more random bits start group five
    const group4 = (0x8000 | ((r[0]! << 8) | r[1]!)) & 0xbfff;
    this.processTail = `${group4.toString(16).padStart(4, '0')}-${HEX[r[2]!]}${HEX[r[3]!]}`;
  }

  next(nowMs: number = Date.now()): string {
    if (nowMs !== this.lastMs) {
      this.lastMs = nowMs;
      const hex = nowMs.toString(16).padStart(12, '0');
      const randA = random12();
      this.prefix = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${randA.toString(16).padStart(3, '0')}-${this.processTail}`;
    }
    this.counter = (this.counter + 1) >>> 0;
    return this.prefix + this.counter.toString(16).padStart(8, '0');
  }
}

/** Random bits drawn 4 KiB at a time: one randomBytes() call per new millisecond was a visible cost. */
const RANDOM_POOL = Buffer.alloc(4096);
let randomAt = RANDOM_POOL.length;

function random12(): number {
  if (randomAt + 2 > RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    randomAt = 0;
  }
  const v = ((RANDOM_POOL[randomAt]! << 8) | RANDOM_POOL[randomAt + 1]!) & 0x0fff;
  randomAt += 2;
  return v;
}

/** Rough size of an event in bytes, for buffer accounting where a source did not measure its input. */
export function estimateEventBytes(event: Event): number {
  const message = event.message;
  return (typeof message === 'string' ? message.length : 64) + 128;
}
