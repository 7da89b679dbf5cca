import { parentPort } from 'node:worker_threads';
import { writeParquetFile } from './parquet-writer.ts';
import type { SealReply, SealRequest } from './seal-thread.ts';

/*
 * The seal thread's entry (started by seal-thread.ts): reads, parses and encodes a staging file into its
 * Parquet temporary file and fsyncs it, so the event loop of the sources and sinks never waits on encoding.
 * One request at a time: the main thread queues them, so only one row group is held in memory.
 */

const port = parentPort;
if (port === null) throw new Error('seal-worker.ts runs only as a worker thread (see seal-thread.ts)');

port.on('message', (request: SealRequest) => {
  writeParquetFile(request.stagingPath, request.outPath, request.options).then(
    (written) => port.postMessage({ id: request.id, written } satisfies SealReply),
    (error: unknown) => {
      const e = error as NodeJS.ErrnoException;
      const reply: SealReply = {
        id: request.id,
        error: { message: e?.message ?? String(error), code: e?.code, stack: e?.stack },
      };
      port.postMessage(reply);
    },
  );
});
