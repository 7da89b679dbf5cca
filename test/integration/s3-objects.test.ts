import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { RetryableError } from '../../src/core/errors.ts';
import {
  forgetConditionalSupport,
  ObjectStore,
  type ObjectStoreOptions,
  objectStoreOptionsShape,
} from '../../src/sinks/s3/objects.ts';
import { recordingLogger, tempDir } from '../helpers/context.ts';
import { type S3Server, startS3Server } from '../helpers/servers/s3.ts';

const MiB = 1024 * 1024;
const BUCKET = 'fluxo-objects';

function storeFor(s3: S3Server, extra: Record<string, unknown> = {}) {
  const { logger, lines } = recordingLogger('info');
  const options: ObjectStoreOptions = z.object(objectStoreOptionsShape).parse({
    bucket: BUCKET,
    endpoint: s3.endpoint,
    force_path_style: true,
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    multipart_threshold: '5MiB',
    part_size: '5MiB',
    ...extra,
  });
  const store = new ObjectStore(options, logger, 'sink test');
  return { store, lines };
}

function file(dir: string, name: string, bytes: number): { path: string; md5: string } {
  const data = randomBytes(bytes);
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, md5: createHash('md5').update(data).digest('hex') };
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

test('puts small and multipart files once; the same key again is "existed" by the HEAD fallback (Swift: 501)', async (t) => {
  forgetConditionalSupport();
  const s3 = await startS3Server(t, { buckets: [BUCKET] });
  if (!s3) return;
  const dir = tempDir(t);
  const { store, lines } = storeFor(s3);
  t.after(() => store.close());
  const signal = new AbortController().signal;
  const small = file(dir, 'small.bin', 100_000);
  assert.equal(await store.putFileOnce('p/small.bin', small.path, signal, { contentType: 'x/y' }), 'created');
  assert.ok(
    lines.some((l) => String(l.msg).includes('no conditional writes')),
    'the conditional PUT was tried, answered 501 and remembered',
  );
  assert.equal(await store.putFileOnce('p/small.bin', small.path, signal), 'existed');

  const big = file(dir, 'big.bin', 12 * MiB);
  assert.equal(await store.putFileOnce('p/big.bin', big.path, signal), 'created');
  assert.equal(await store.putFileOnce('p/big.bin', big.path, signal), 'existed');

  // Same size, other bytes under the key (a torn or foreign object): replaced, still one object.
  const other = file(dir, 'other.bin', 100_000);
  assert.equal(await store.putFileOnce('p/small.bin', other.path, signal), 'created');

  const listed = await s3.list(BUCKET, 'p/');
  assert.deepEqual(
    listed.map((o) => [o.key, o.size]),
    [
      ['p/big.bin', 12 * MiB],
      ['p/small.bin', 100_000],
    ],
  );
  assert.match(listed[0]!.etag, /-3"$/, 'three parts of 5 MiB, 5 MiB and 2 MiB');
  assert.equal(md5(await s3.get(BUCKET, 'p/big.bin')), big.md5);
  assert.equal(md5(await s3.get(BUCKET, 'p/small.bin')), other.md5);
  assert.equal(lines.filter((l) => String(l.msg).includes('no conditional writes')).length, 1, 'learnt once');
});

test('aborts its own stale multipart uploads under its prefix, and only those', async (t) => {
  const s3 = await startS3Server(t, { buckets: [BUCKET] });
  if (!s3) return;
  const { store } = storeFor(s3);
  t.after(() => store.close());
  for (const key of ['mine/a.parquet', 'mine/dt=2026-12-02/b.parquet', 'theirs/c.parquet']) {
    await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  }
  const signal = new AbortController().signal;
  assert.equal(await store.abortStaleUploads('mine/', 3_600_000, signal), 0, 'none older than an hour');
  // Swift reports Initiated to the second, which can place an upload made this second after now: let them age.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(await store.abortStaleUploads('mine/', 0, signal), 2);
  assert.deepEqual(
    (await s3.uploads(BUCKET)).map((u) => u.key),
    ['theirs/c.parquet'],
  );
});

test('a wrong secret or a missing bucket is a clear retryable error that names the bucket, never the secret', async (t) => {
  const s3 = await startS3Server(t, { buckets: [BUCKET] });
  if (!s3) return;
  const dir = tempDir(t);
  const secret = 'not-the-secret-7f3a9c';
  const { store, lines } = storeFor(s3, { secret_access_key: secret });
  t.after(() => store.close());
  const small = file(dir, 'small.bin', 1000);
  const signal = new AbortController().signal;
  const denied = await store.putFileOnce('k/small.bin', small.path, signal).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(denied instanceof RetryableError, String(denied));
  assert.match(denied.message, /fluxo-objects/);
  assert.match(denied.message, /403/);
  assert.match(denied.message, /check (access_key_id and secret_access_key|the credentials)/);
  assert.doesNotMatch(denied.message, new RegExp(secret));
  assert.doesNotMatch(JSON.stringify(lines), new RegExp(secret));

  const { store: nowhere } = storeFor(s3, { bucket: 'no-such-bucket' });
  t.after(() => nowhere.close());
  const missing = await nowhere.putFileOnce('k/small.bin', small.path, signal).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(missing instanceof RetryableError, String(missing));
  assert.match(missing.message, /bucket no-such-bucket does not exist/);
});

test('the server killed mid-upload and restarted: the retried upload completes, one object, full content', async (t) => {
  forgetConditionalSupport();
  const s3 = await startS3Server(t, { buckets: [BUCKET] });
  if (!s3) return;
  const dir = tempDir(t);
  const { store } = storeFor(s3, { upload_concurrency: 1 });
  t.after(() => store.close());
  const big = file(dir, 'big.bin', 40 * MiB);
  const signal = new AbortController().signal;
  const first = store.putFileOnce('crash/big.bin', big.path, signal).then(
    () => 'completed' as const,
    (e: unknown) => e,
  );
  // The upload is under way once the store lists it: its first part is being sent.
  let started = false;
  const watching = (async () => {
    while (!started) {
      started = (await s3.uploads(BUCKET, 'crash/').catch(() => [])).length > 0;
      if (!started) await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await Promise.race([watching, first]);
  started = true;
  await s3.kill9();
  const outcome = await first;
  assert.ok(outcome instanceof RetryableError, `the cut upload fails as retryable, not ${String(outcome)}`);
  await new Promise((r) => setTimeout(r, 500));
  await s3.restart();
  // What the sink's runner does: retry with backoff until it goes through.
  let result: string | undefined;
  for (let attempt = 0; result === undefined; attempt++) {
    assert.ok(attempt < 50, 'the upload went through after the restart');
    result = await store.putFileOnce('crash/big.bin', big.path, signal).catch(async () => {
      await new Promise((r) => setTimeout(r, 200));
      return undefined;
    });
  }
  assert.equal(result, 'created');
  const listed = await s3.list(BUCKET, 'crash/');
  assert.deepEqual(
    listed.map((o) => [o.key, o.size]),
    [['crash/big.bin', 40 * MiB]],
  );
  assert.equal(md5(await s3.get(BUCKET, 'crash/big.bin')), big.md5);
  // The upload the kill cut is left on the server; the next start aborts it.
  await store.abortStaleUploads('crash/', 0, signal);
  assert.deepEqual(await s3.uploads(BUCKET, 'crash/'), []);
});
