import { join } from 'node:path';
import { defineBuffer } from '../core/sink/buffer.ts';
import { bufferDirectories, inspectBuffer } from './disk/inspect.ts';
import { DiskBuffer } from './disk.ts';
import { MemoryBuffer } from './memory.ts';

export const memoryBuffer = defineBuffer({
  kind: 'buffer',
  type: 'memory',
  create(spec, context) {
    context.metrics.bufferMaxEvents.set(spec.maxEvents);
    return new MemoryBuffer(
      { maxEvents: spec.maxEvents, maxBytes: spec.maxBytes, whenFull: spec.whenFull },
      context.metrics,
    );
  },
});

export const diskBuffer = defineBuffer({
  kind: 'buffer',
  type: 'disk',
  create(spec, context) {
    return new DiskBuffer(
      {
        dir: join(context.dataDir, 'buffers', context.id),
        maxSize: spec.maxSize,
        whenFull: spec.whenFull,
        sync: spec.sync,
        syncIntervalMs: spec.syncIntervalMs,
        commitIntervalMs: spec.commitIntervalMs,
        writeDelayMs: spec.writeDelayMs,
        maxSegmentSize: spec.maxSegmentSize,
      },
      { id: context.id, logger: context.logger, metrics: context.metrics, registry: context.registry },
    );
  },
  /**
   * A disk buffer whose sink is no longer configured (renamed or removed) keeps its undelivered events on
   * disk, untouched: says what it holds and how to get it delivered.
   */
  async reportOrphans(dataDir, configured, logger) {
    let dirs: { sink: string; dir: string }[];
    try {
      dirs = await bufferDirectories(dataDir);
    } catch (error) {
      logger.warn({ err: String(error) }, 'could not list the disk buffer directories');
      return;
    }
    for (const { sink: id, dir } of dirs) {
      if (configured.has(id)) continue;
      try {
        const report = await inspectBuffer(id, dir);
        if (report.events === 0) continue;
        logger.warn(
          {
            buffer_dir: report.dir,
            events: report.events,
            bytes: report.bytes,
            oldest: report.oldestUnackedAt ? new Date(report.oldestUnackedAt).toISOString() : undefined,
          },
          `disk buffer of sink ${id} holds undelivered events, but no sink ${id} with a disk buffer is configured: ` +
            'they stay on disk. Configure the sink under that id again to deliver them, or remove the directory.',
        );
      } catch (error) {
        logger.warn({ buffer_dir: dir, err: String(error) }, 'could not read a disk buffer directory');
      }
    }
  },
});

/** Every kind of buffer a sink can have. */
export const buffers = [memoryBuffer, diskBuffer] as const;
