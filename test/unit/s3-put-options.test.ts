import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import {
  checkObjectStoreOptions,
  ObjectStore,
  type ObjectStoreOptions,
  objectStoreOptionsShape,
} from '../../src/sinks/s3/objects.ts';
import { tempDir, testLogger } from '../helpers/context.ts';

/*
 * What Swift's s3api cannot prove (it refuses server-side encryption, knows one storage class, ignores tags):
 * that the PUT carries the options. A loopback HTTP server records the request as the wire has it.
 */
describe('s3 object options on the PUT', () => {
  it('storage_class, server_side_encryption, ssekms_key_id, acl, tags and content_type go as headers', async (t) => {
    const requests: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
    const server = createServer((req, res) => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { ETag: '"d41d8cd98f00b204e9800998ecf8427e"' });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const { port } = server.address() as AddressInfo;
    const options = z.object(objectStoreOptionsShape).parse({
      bucket: 'master',
      endpoint: `http://127.0.0.1:${port}`,
      force_path_style: true,
      access_key_id: 'id',
      secret_access_key: 'secret',
      storage_class: 'STANDARD_IA',
      server_side_encryption: 'aws:kms',
      ssekms_key_id: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
      acl: 'bucket-owner-full-control',
      tags: { dataset: 'master', 'cost center': 'data & ml' },
      content_type: 'application/x-parquet',
    });
    const store = new ObjectStore(options, testLogger(), 's3 sink test');
    t.after(() => store.close());
    const file = join(tempDir(t), 'part.parquet');
    writeFileSync(file, 'PAR1 not really PAR1');
    const outcome = await store.putFileOnce('logs/part-1-2.parquet', file, AbortSignal.timeout(10_000), {
      contentType: 'application/vnd.apache.parquet',
    });
    assert.equal(outcome, 'created');
    const put = requests.find((r) => r.method === 'PUT');
    assert.ok(put, `a PUT among ${requests.map((r) => r.method).join(', ')}`);
    assert.equal(put.url.split('?')[0], '/master/logs/part-1-2.parquet');
    const h = put.headers;
    assert.equal(h['x-amz-storage-class'], 'STANDARD_IA');
    assert.equal(h['x-amz-server-side-encryption'], 'aws:kms');
    assert.equal(h['x-amz-server-side-encryption-aws-kms-key-id'], 'arn:aws:kms:eu-west-1:111122223333:key/abc');
    assert.equal(h['x-amz-acl'], 'bucket-owner-full-control');
    assert.deepEqual(Object.fromEntries(new URLSearchParams(String(h['x-amz-tagging']))), {
      dataset: 'master',
      'cost center': 'data & ml',
    });
    assert.equal(h['content-type'], 'application/x-parquet', 'content_type wins over the encoding’s');
    assert.ok(h['content-md5'], 'the default checksum');
  });

  it('more than 10 tags is a config error', () => {
    const tags = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
    const schema = z
      .object(objectStoreOptionsShape)
      .superRefine((o, ctx) => checkObjectStoreOptions(o as ObjectStoreOptions, ctx));
    assert.equal(schema.safeParse({ bucket: 'master', tags }).success, false);
  });
});
