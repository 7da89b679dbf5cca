import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FluxoError } from '../../core/errors.ts';
import { errorText } from './fs.ts';
import { Ledger } from './ledger.ts';
import { acquireLock } from './lock.ts';
import type { DiskBufferMetrics } from './metrics.ts';
import { type Segment, scanSegments, type TimelinePoint } from './scan.ts';

/** What a buffer directory holds once recovered: the log to append to and the records to replay. */
export interface RecoveredLog {
  ledger: Ledger;
  /** Releases the directory's lock (at close). */
  releaseLock: () => Promise<void>;
  /** The log's segments, oldest first, each checked whole. */
  segments: Segment[];
  /** Everything up to here is acknowledged (from the ledger; 0 when it is new or unreadable). */
  ackedId: number;
  /** The id the writer gives first: past everything on disk and everything the ledger says was given. */
  firstId: number;
  /**
   * Ids no record holds: after the log's last record (or the acknowledged position), up to `firstId - 1`: a
   * tail lost to damage, already reported (see DeliveryQueue).
   */
  idsWithoutRecords: { after: number; through: number };
  /** The records the sink has yet to acknowledge. */
  unacked: { events: number; bytes: number };
  timeline: TimelinePoint[];
  /** The first record to replay, if any. */
  firstUnacked: { segment: Segment; offset: number } | undefined;
  /** Damage the scan reported already, `segment:offset`, so that reading back does not report it again. */
  damage: string[];
}

/**
 * Locks the directory, reads the ledger and checks every segment, truncating a torn tail, then counts what is
 * not acknowledged; reports damage and what is to be replayed. What it opened is closed again if it fails.
 */
export async function recoverLog(
  dir: string,
  sinkId: string,
  log: Logger,
  metrics: DiskBufferMetrics | undefined,
  /** The acknowledged position a reload's previous buffer closed with (at least what its ledger says). */
  handedAckedId = 0,
): Promise<RecoveredLog> {
  let ledger: Ledger | undefined;
  let releaseLock: (() => Promise<void>) | undefined;
  try {
    await mkdir(dir, { recursive: true });
    releaseLock = await acquireLock(dir, `sink ${sinkId}`);
    const opened = await Ledger.open(dir);
    ledger = opened.ledger;
    const { state, problem } = opened;
    if (problem) {
      metrics?.component.error('ledger_damaged');
      log.error({ dir, problem }, 'disk buffer: ledger unreadable, replaying every record on disk');
    }
    const ackedId = Math.max(state?.ackedId ?? 0, handedAckedId);
    // The last record the ledger says was written.
    const writtenUpTo = (state?.nextId ?? 1) - 1;
    const scan = await scanSegments(dir, ackedId, true, writtenUpTo);
    for (const d of scan.damage) {
      // Counted in records the sink had not acknowledged: a damaged header alone loses none.
      metrics?.corrupt.inc(d.lostRecords ?? 1);
      log.error(
        {
          dir,
          segment: d.segment,
          offset: d.offset,
          reason: d.reason,
          bytes: d.bytes,
          lost_records: d.lostRecords,
          lost_ids: d.lostIds,
        },
        d.kind === 'torn_tail'
          ? 'disk buffer: torn tail (a write cut by a crash) truncated at the last good record'
          : d.kind === 'missing_tail'
            ? 'disk buffer: records the ledger says were written are missing from the end of the log'
            : d.offset === 0
              ? 'disk buffer: damaged segment header; its records are read by their length and CRC'
              : 'disk buffer: damaged record skipped; the records around it are replayed',
      );
    }
    if (scan.removed.length > 0) log.warn({ dir, segments: scan.removed }, 'disk buffer: unusable segments removed');
    if (scan.firstUnacked) {
      metrics?.replayed.inc(scan.unacked.events);
      log.info(
        { dir, events: scan.unacked.events, bytes: scan.unacked.bytes, segments: scan.segments.length },
        'disk buffer: replaying events not acknowledged by the sink before the last stop',
      );
    }
    // Where the log ends (its last record, or what the acknowledged position passed), and the last id given.
    const logEnd = Math.max(scan.maxId, ackedId);
    const lastGiven = Math.max(logEnd, writtenUpTo);
    return {
      ledger,
      releaseLock,
      segments: scan.segments,
      ackedId,
      firstId: lastGiven + 1,
      idsWithoutRecords: { after: logEnd, through: lastGiven },
      unacked: { events: scan.unacked.events, bytes: scan.unacked.bytes },
      timeline: scan.timeline,
      firstUnacked: scan.firstUnacked,
      damage: scan.damage.map((d) => `${d.segment}:${d.offset}`),
    };
  } catch (error) {
    await ledger?.close().catch(() => {});
    await releaseLock?.().catch(() => {});
    if (error instanceof FluxoError) throw error;
    const message = `sink ${sinkId}: cannot open the disk buffer ${dir}: ${errorText(error)}`;
    throw new FluxoError('FLUXO_BUFFER_OPEN', message, { cause: error });
  }
}
