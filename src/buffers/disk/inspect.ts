import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readLedger } from './ledger.ts';
import { isAlive, type LockHolder, readLockHolderSync } from './lock.ts';
import { type Damage, scanSegments } from './scan.ts';

/** What one sink's disk buffer holds, read without opening it. */
export interface BufferReport {
  sink: string;
  dir: string;
  /** Events written and not acknowledged by the sink: what the next start replays. */
  events: number;
  records: number;
  bytes: number;
  /** Bytes of segment files on disk (acknowledged records wait for their whole segment). */
  diskBytes: number;
  segments: number;
  /** When the oldest unacknowledged event was buffered (epoch ms). */
  oldestUnackedAt: number | undefined;
  ackedId: number;
  lastId: number;
  damage: Damage[];
  ledgerProblem: string | undefined;
  /** The live process that has the buffer open, if any: the newest records may then still be being written. */
  inUseBy: LockHolder | undefined;
}

/** The sink ids that have a disk buffer directory under `<dataDir>/buffers/`, sorted; none when there is no such folder. */
export async function bufferDirectories(dataDir: string): Promise<{ sink: string; dir: string }[]> {
  const root = join(dataDir, 'buffers');
  let sinks: string[];
  try {
    sinks = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return sinks.sort().map((sink) => ({ sink, dir: join(root, sink) }));
}

/** Reports every disk buffer under `<dataDir>/buffers/`, by sink id. Changes nothing. */
export async function inspectBuffers(dataDir: string): Promise<BufferReport[]> {
  const reports: BufferReport[] = [];
  for (const { sink, dir } of await bufferDirectories(dataDir)) reports.push(await inspectBuffer(sink, dir));
  return reports;
}

export async function inspectBuffer(sink: string, dir: string): Promise<BufferReport> {
  const { state, problem } = await readLedger(dir);
  const ackedId = state?.ackedId ?? 0;
  const scan = await scanSegments(dir, ackedId, false, (state?.nextId ?? 1) - 1);
  let diskBytes = 0;
  for (const s of scan.segments) diskBytes += (await stat(s.path).catch(() => ({ size: 0 }))).size;
  const holder = readLockHolderSync(dir);
  return {
    sink,
    dir,
    events: scan.unacked.events,
    records: scan.unacked.records,
    bytes: scan.unacked.bytes,
    diskBytes,
    segments: scan.segments.length,
    oldestUnackedAt: scan.oldestUnackedAt,
    ackedId,
    lastId: Math.max(scan.maxId, ackedId),
    damage: scan.damage,
    ledgerProblem: state === undefined && problem !== 'no ledger' ? problem : undefined,
    inUseBy: holder && isAlive(holder) ? holder : undefined,
  };
}
