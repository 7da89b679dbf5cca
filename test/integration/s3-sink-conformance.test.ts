import { mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, type TestContext } from 'node:test';
import { fileSinkOptions, fileSinkOptionsShape, stagedFileSink } from '../../src/sinks/file.ts';
import { s3Sink } from '../../src/sinks/s3.ts';
import { type S3Server, startS3Server } from '../helpers/servers/s3.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';
import { filesUnder, idsOfLines, partitionBlockers } from './fixtures/sink-harnesses.ts';

/**
 * One Swift for every check of this file (a bucket each): starting one per check costs 3–15 s on a busy 2-core
 * machine, and the suite bounds all its checks together. Stopped after the last test of the file.
 */
let shared: Promise<S3Server | undefined> | undefined;
let buckets = 0;
const cleanups: (() => unknown)[] = [];
// Registered at the top level, so it runs after the file's last test (inside a test it would hook that test).
after(async () => {
  for (const fn of cleanups) await fn();
});
function sharedServer(t: TestContext): Promise<S3Server | undefined> {
  shared ??= startS3Server({
    after: (fn: () => unknown) => cleanups.push(fn),
    skip: (m?: string) => t.skip(m),
  } as never);
  return shared;
}

/**
 * The s3 sink against a real Swift s3api. What it holds is the objects on the object server's disk plus what is
 * staged (fsync'd, acknowledged, not uploaded yet) under `<data_dir>/sinks/out/`: a staging file whose object is
 * already uploaded (the moment before its deletion) is not counted twice. Like the file sink, its writes are
 * local appends, so "down" and a failed partition are a plain file where a partition's staging directory goes;
 * the store's own outages are in s3-sink.test.ts.
 */
const s3Harness: SinkHarness = {
  definition: s3Sink({ shape: fileSinkOptionsShape, schema: fileSinkOptions, build: stagedFileSink }),
  notApplicable: {
    'honours abort':
      'a write is an fdatasync into the local staging, which cannot be held back; uploads run after the acknowledgement',
    'a retried write sends the same bytes, once delivered':
      'a failed staging write leaves no attempt to compare: it is cut back to its last commit (the file sink’s staging)',
  },
  async destination(t: TestContext, { down, dataDir }): Promise<Destination> {
    const s3 = await sharedServer(t);
    if (!s3) throw new Error('no S3 server');
    const bucket = `fluxo-conformance-${++buckets}`;
    await s3.createBucket(bucket);
    const root = join(dataDir, 'sinks', 'out');
    mkdirSync(root, { recursive: true });
    const blockers = partitionBlockers(root, down);
    return {
      options: {
        bucket,
        endpoint: s3.endpoint,
        force_path_style: true,
        access_key_id: s3.accessKeyId,
        secret_access_key: s3.secretAccessKey,
        key: 'hour=%H/part.ndjson',
        encoding: 'ndjson',
        idle_timeout: '100ms',
        max_file_age: '200ms',
      },
      received: () => {
        const ids: string[] = [];
        const uploaded = new Set<string>();
        for (const [key, data] of s3.objectsOnDisk()) {
          if (!key.startsWith(`${bucket}/`)) continue;
          uploaded.add(key.slice(bucket.length + 1));
          ids.push(...idsOfLines(data.toString('utf8')));
        }
        for (const f of filesUnder(root)) {
          if (blockers.isBlocker(f)) continue;
          const staged = /^\.(.+)\.[0-9a-f]{8}\.inprogress$/.exec(basename(f));
          const relative = f.slice(root.length + 1);
          const key = staged ? join(relative.slice(0, relative.length - basename(f).length), staged[1]!) : relative;
          if (uploaded.has(key)) continue;
          ids.push(...idsOfLines(readFileSync(f, 'utf8')));
        }
        return ids;
      },
      up: blockers.up,
      partial: blockers.partial,
    };
  },
};

sinkConformance(s3Harness);
