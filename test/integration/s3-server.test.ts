import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { startS3Server } from '../helpers/servers/s3.ts';

// The S3 server the s3 sink's tests run against: what it does and lacks is what the sink must cope with.
test('Swift s3api: objects survive kill9/restart, and a conditional PUT answers 501', async (t) => {
  const s3 = await startS3Server(t, { buckets: ['fluxo-test'] });
  if (!s3) return;
  await s3.client.send(new PutObjectCommand({ Bucket: 'fluxo-test', Key: 'a/one.txt', Body: 'hello' }));
  const conditional = await s3.client
    .send(new PutObjectCommand({ Bucket: 'fluxo-test', Key: 'a/two.txt', Body: 'hello', IfNoneMatch: '*' }))
    .then(
      () => undefined,
      (error: { name?: string; $metadata?: { httpStatusCode?: number } }) => error,
    );
  assert.equal(conditional?.$metadata?.httpStatusCode, 501, 'Swift 2.30 has no conditional PUT');
  assert.equal(conditional?.name, 'NotImplemented');
  await s3.kill9();
  await s3.restart();
  const listed = await s3.list('fluxo-test', 'a/');
  assert.deepEqual(
    listed.map((o) => [o.key, o.size]),
    [['a/one.txt', 5]],
  );
  assert.equal((await s3.get('fluxo-test', 'a/one.txt')).toString(), 'hello');
});
