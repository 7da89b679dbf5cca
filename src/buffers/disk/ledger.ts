import { writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../core/fs.ts';
import { crc32c } from './crc32c.ts';

/** What the sink acknowledged: the replay at start begins after `ackedId`. */
export interface LedgerState {
  /** Every record up to this id is acknowledged by the sink (delivered or dead-lettered). */
  ackedId: number;
  /** The last record handed to the sink (acknowledged or not): informational, for `fluxo buffer inspect`. */
  readId: number;
  /** The id the next record will get, so ids keep increasing when every segment was deleted. */
  nextId: number;
  /** When this state was written (epoch ms). */
  updatedAt: number;
}

export const LEDGER_FILE = 'ledger';
const SLOT_BYTES = 64;
const CHECKED_BYTES = 48;
const MAGIC = 0x4744_4c46; // "FLDG" little-endian
const VERSION = 1;

/**
 * The ledger: two fixed 64-byte slots, each with a generation number and a CRC32C, written alternately in
 * place. A write torn by a crash damages at most the slot being written, and the other still holds the
 * previous state, so an update is atomic without a rename; and overwriting blocks the file already owns
 * needs no free space, so the ledger (and with it the deletion of acknowledged segments) keeps working on a
 * full disk.
 */
export class Ledger {
  private constructor(
    private readonly fh: FileHandle,
    private generation: number,
  ) {}

  /** Opens (creating when absent) the ledger of a buffer directory, with the last state written, if any. */
  static async open(dir: string): Promise<{ ledger: Ledger; state: LedgerState | undefined; problem?: string }> {
    const path = join(dir, LEDGER_FILE);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      fh = await open(path, 'w+');
      await fh.write(Buffer.alloc(2 * SLOT_BYTES), 0, 2 * SLOT_BYTES, 0);
      await fh.datasync();
      await syncDirectory(dir);
    }
    const raw = Buffer.alloc(2 * SLOT_BYTES);
    await fh.read(raw, 0, raw.length, 0);
    const read = parseLedger(raw);
    return { ledger: new Ledger(fh, read.generation), state: read.state, problem: read.problem };
  }

  /**
   * Writes the state into the older slot. `sync` fsyncs it; without, a power loss may bring back an older
   * state, which only replays more (duplicates): the ledger never runs ahead of what the sink acknowledged.
   */
  async write(state: LedgerState, sync: boolean): Promise<void> {
    const generation = this.generation + 1;
    const slot = Buffer.alloc(SLOT_BYTES);
    slot.writeUInt32LE(MAGIC, 0);
    slot.writeUInt32LE(VERSION, 4);
    slot.writeDoubleLE(generation, 8);
    slot.writeDoubleLE(state.ackedId, 16);
    slot.writeDoubleLE(state.readId, 24);
    slot.writeDoubleLE(state.nextId, 32);
    slot.writeDoubleLE(state.updatedAt, 40);
    slot.writeUInt32LE(crc32c(slot.subarray(0, CHECKED_BYTES)), CHECKED_BYTES);
    const position = (generation % 2) * SLOT_BYTES;
    if (sync) {
      await this.fh.write(slot, 0, SLOT_BYTES, position);
      await this.fh.datasync();
    } else {
      // 64 bytes into blocks the file owns, not synced: a copy into the page cache, cheaper on the event loop
      // than a thread-pool round trip (the same trade as the memory-mapped ledgers of other collectors).
      writeSync(this.fh.fd, slot, 0, SLOT_BYTES, position);
    }
    this.generation = generation;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Reads a ledger without opening it for writing (`fluxo buffer inspect`). */
export async function readLedger(dir: string): Promise<{ state: LedgerState | undefined; problem?: string }> {
  let fh: FileHandle;
  try {
    fh = await open(join(dir, LEDGER_FILE), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: undefined, problem: 'no ledger' };
    throw error;
  }
  try {
    const raw = Buffer.alloc(2 * SLOT_BYTES);
    await fh.read(raw, 0, raw.length, 0);
    const { state, problem } = parseLedger(raw);
    return { state, problem };
  } finally {
    await fh.close();
  }
}

function parseLedger(raw: Buffer): { state: LedgerState | undefined; generation: number; problem?: string } {
  let best: { state: LedgerState; generation: number } | undefined;
  let damaged = 0;
  for (let i = 0; i < 2; i++) {
    const s = raw.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES);
    if (s.readUInt32LE(0) === 0 && s.readDoubleLE(8) === 0) continue; // never written
    if (s.readUInt32LE(0) !== MAGIC || crc32c(s.subarray(0, CHECKED_BYTES)) !== s.readUInt32LE(CHECKED_BYTES)) {
      damaged++;
      continue;
    }
    const generation = s.readDoubleLE(8);
    if (best && best.generation >= generation) continue;
    best = {
      generation,
      state: {
        ackedId: s.readDoubleLE(16),
        readId: s.readDoubleLE(24),
        nextId: s.readDoubleLE(32),
        updatedAt: s.readDoubleLE(40),
      },
    };
  }
  const problem =
    damaged === 2 ? 'both ledger slots are damaged' : damaged === 1 && !best ? 'the ledger slot is damaged' : undefined;
  return { state: best?.state, generation: best?.generation ?? 0, problem };
}
