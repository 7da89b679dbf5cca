import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type {
  AbortMultipartUploadCommandInput,
  ListMultipartUploadsCommandOutput,
  PutObjectCommandInput,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RetryableError } from '../../core/errors.ts';
import { lazyImport } from '../../core/lazy-import.ts';
import { duration, size, urlString } from '../../core/units.ts';

const MiB = 1024 * 1024;

/** The AWS SDK is loaded when an s3 sink connects, not when Fluxo starts (see lazyImport). */
const sdk = lazyImport(async () => {
  const [client, storage] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]);
  return { ...client, Upload: storage.Upload };
});

export const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'GLACIER_IR',
  'DEEP_ARCHIVE',
  'EXPRESS_ONEZONE',
] as const;

/** The object-store options of the s3 sink: where objects go and how they are written. */
export const objectStoreOptionsShape = {
  bucket: z.string().min(3).max(63).describe('The bucket objects are written to; it must exist.'),
  region: z
    .string()
    .min(1)
    .default('us-east-1')
    .describe('The region of the bucket (S3-compatible stores usually accept any, e.g. `us-east-1`).'),
  endpoint: urlString(['http', 'https'])
    .optional()
    .describe(
      'An S3-compatible store instead of AWS, e.g. `http://127.0.0.1:9000` (MinIO, Ceph, OpenStack Swift s3api).',
    ),
  force_path_style: z
    .boolean()
    .default(false)
    .describe('Address the bucket as `<endpoint>/<bucket>/<key>` rather than `<bucket>.<endpoint>/<key>`.'),
  access_key_id: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Access key id; with `secret_access_key`. Absent: the standard AWS chain (environment, shared files, SSO, ' +
        'container or instance role).',
    ),
  secret_access_key: z
    .string()
    .min(1)
    .optional()
    .describe('Secret access key; use `${AWS_SECRET_ACCESS_KEY}` to keep it out of the file. Never logged.'),
  session_token: z
    .string()
    .min(1)
    .optional()
    .describe('Session token of temporary credentials, with `access_key_id` and `secret_access_key`. Never logged.'),
  server_side_encryption: z
    .enum(['AES256', 'aws:kms'])
    .optional()
    .describe('Server-side encryption of each object: `AES256` (S3-managed keys) or `aws:kms` (see `ssekms_key_id`).'),
  ssekms_key_id: z
    .string()
    .min(1)
    .optional()
    .describe('With `server_side_encryption: aws:kms`: the KMS key id or ARN (absent: the account default key).'),
  storage_class: z.enum(STORAGE_CLASSES).optional().describe('Storage class of each object (absent: `STANDARD`).'),
  acl: z
    .enum(['private', 'bucket-owner-full-control', 'bucket-owner-read', 'authenticated-read', 'public-read'])
    .optional()
    .describe('A canned ACL for each object (absent: none sent, the bucket decides).'),
  tags: z
    .record(z.string().min(1).max(128), z.string().max(256))
    .optional()
    .describe(
      'Object tags set on each object (`x-amz-tagging`; at most 10), e.g. `{ dataset: master, team: data }`; for ' +
        'lifecycle rules and cost reports. Not tried against AWS or Swift: only that the PUT carries them is tested.',
    ),
  content_type: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Content-Type of each object instead of the one the encoding gives (`application/vnd.apache.parquet`, ' +
        '`application/x-ndjson`, `text/plain; charset=utf-8`, `application/gzip`).',
    ),
  multipart_threshold: size()
    .default(16 * MiB)
    .describe('Objects smaller than this go in one PutObject; larger ones as a multipart upload of `part_size` parts.'),
  part_size: size()
    .default(8 * MiB)
    .describe('Size of each part of a multipart upload (S3 takes 5MiB to 5GiB; at most 10,000 parts).'),
  upload_concurrency: z.number().int().positive().default(4).describe('Parts of one multipart upload sent at once.'),
  checksum: z
    .enum(['md5', 'crc32', 'crc32c', 'sha256', 'none'])
    .default('md5')
    .describe(
      'Content checksum sent with each object (each part of a multipart upload) for the store to check: `md5` ' +
        '(Content-MD5, checked by every S3 implementation, Swift included), `crc32`, `crc32c` or `sha256` ' +
        '(x-amz-checksum-*, checked by AWS; Swift ignores them), or `none`.',
    ),
  request_timeout: duration()
    .default(60_000)
    .describe('How long one request may wait for the store (a connection, an answer, the next bytes).'),
};

const objectStoreOptions = z.object(objectStoreOptionsShape);
export type ObjectStoreOptions = z.infer<typeof objectStoreOptions>;

/** Cross-field checks of the object-store options, for the sink's superRefine. */
export function checkObjectStoreOptions(o: ObjectStoreOptions, ctx: z.RefinementCtx): void {
  if ((o.access_key_id === undefined) !== (o.secret_access_key === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [o.access_key_id === undefined ? 'access_key_id' : 'secret_access_key'],
      message: 'set access_key_id and secret_access_key together (or neither, for the standard AWS chain)',
    });
  }
  if (o.session_token !== undefined && o.access_key_id === undefined) {
    ctx.addIssue({ code: 'custom', path: ['session_token'], message: 'session_token needs access_key_id' });
  }
  if (o.ssekms_key_id !== undefined && o.server_side_encryption !== 'aws:kms') {
    ctx.addIssue({
      code: 'custom',
      path: ['ssekms_key_id'],
      message: 'ssekms_key_id is for server_side_encryption: aws:kms',
    });
  }
  if (o.tags !== undefined && Object.keys(o.tags).length > 10) {
    ctx.addIssue({ code: 'custom', path: ['tags'], message: 'S3 takes at most 10 tags per object' });
  }
  if (o.part_size < 5 * MiB) {
    ctx.addIssue({ code: 'custom', path: ['part_size'], message: 'S3 parts are at least 5MiB (but the last)' });
  }
  if (o.multipart_threshold < o.part_size) {
    ctx.addIssue({
      code: 'custom',
      path: ['multipart_threshold'],
      message: 'multipart_threshold must be at least part_size',
    });
  }
}

/**
 * Stores that answered a conditional PUT (`If-None-Match: *`) with 501: per process, by endpoint and bucket,
 * so the first write learns it and the others skip straight to the fallback.
 */
const conditionalUnsupported = new Set<string>();
/** Stores that honoured one: multipart uploads then complete conditionally too. */
const conditionalSupported = new Set<string>();

export type PutOutcome = 'created' | 'existed';

/** What a store said about an object: present, its size and ETag. */
interface Head {
  readonly size: number;
  readonly etag: string;
}

/** Retry-After beyond this is capped: a misbehaving store must not park a sink for days. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * The s3 sink's object store client: puts one local file under one key, once (idempotently), and cleans up
 * its own stale multipart uploads. Every failure is a RetryableError whose message names the bucket and the
 * key and says what to check; secrets never appear in messages or logs (only the access key id may).
 */
export class ObjectStore {
  private client: S3Client | undefined;
  private readonly storeKey: string;
  readonly shown: string;

  constructor(
    private readonly options: ObjectStoreOptions,
    private readonly logger: Logger,
    private readonly who: string,
  ) {
    this.storeKey = `${options.endpoint ?? `aws:${options.region}`} ${options.bucket}`;
    this.shown = `s3://${options.bucket}${options.endpoint === undefined ? '' : ` at ${options.endpoint}`}`;
  }

  /** Loads the SDK and makes the client (no request yet: the first write reaches the store). */
  async open(): Promise<void> {
    if (this.client !== undefined) return;
    const { S3Client } = await sdk();
    const o = this.options;
    const config: S3ClientConfig = {
      region: o.region,
      forcePathStyle: o.force_path_style,
      // Checksums are computed here, over whole buffers: the SDK's own would stream them as aws-chunked
      // trailers, which stores such as Swift refuse (501).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A few quick retries of one request (a part of an upload) inside one attempt; the sink's backoff does the rest.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: Math.min(o.request_timeout, 10_000), requestTimeout: o.request_timeout },
    };
    if (o.endpoint !== undefined) config.endpoint = o.endpoint;
    if (o.access_key_id !== undefined && o.secret_access_key !== undefined) {
      config.credentials = {
        accessKeyId: o.access_key_id,
        secretAccessKey: o.secret_access_key,
        ...(o.session_token === undefined ? {} : { sessionToken: o.session_token }),
      };
    }
    const client = new S3Client(config);
    if (o.checksum === 'md5') {
      // lib-storage sends parts without Content-MD5; every part body is a buffer, so add it here.
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const request = args.request as { headers?: Record<string, string>; body?: unknown };
          const body = request.body;
          if (context.commandName === 'UploadPartCommand' && request.headers && body instanceof Uint8Array) {
            request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
          }
          return next(args);
        },
        { step: 'build', name: 'fluxoPartContentMd5' },
      );
    }
    this.client = client;
  }

  close(): void {
    this.client?.destroy();
    this.client = undefined;
  }

  /** Whether the bucket can be reached with these credentials (HeadBucket). */
  async check(signal: AbortSignal): Promise<void> {
    const { HeadBucketCommand } = await sdk();
    await this.call('HeadBucket', '', signal, (client) =>
      client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), { abortSignal: signal }),
    );
  }

  /**
   * Puts `localPath` under `key` unless it is there already. Conditionally (`If-None-Match: *`) where the store
   * supports it: "already exists" (412) is success. Where it answers 501 (Swift), that is remembered for the
   * process and the fallback is a HEAD: an object of the same size (and, where the ETag is an MD5, the same
   * content) counts as there; otherwise a plain PUT, which with deterministic keys overwrites a partial or
   * different earlier object with this content rather than adding a second one.
   */
  async putFileOnce(
    key: string,
    localPath: string,
    signal: AbortSignal,
    headers: { contentType?: string; contentEncoding?: string } = {},
  ): Promise<PutOutcome> {
    await this.open();
    const bytes = (await stat(localPath)).size;
    if (bytes >= this.options.multipart_threshold) return this.putMultipartOnce(key, localPath, bytes, signal, headers);
    const body = await readFile(localPath);
    const md5 = createHash('md5').update(body).digest();
    const params = this.putParams(key, headers);
    params.Body = body;
    params.ContentLength = body.length;
    this.addChecksum(params, body, md5);
    const { PutObjectCommand } = await sdk();
    if (!conditionalUnsupported.has(this.storeKey)) {
      try {
        await this.call('PutObject', key, signal, (client) =>
          client.send(new PutObjectCommand({ ...params, IfNoneMatch: '*' }), { abortSignal: signal }),
        );
        conditionalSupported.add(this.storeKey);
        return 'created';
      } catch (error) {
        const status = statusOf(error);
        if (status === 412) return 'existed';
        if (status !== 501 && status !== 409) throw error;
        if (status === 501) {
          conditionalUnsupported.add(this.storeKey);
          this.logger.info(
            { sink: this.who, bucket: this.options.bucket },
            's3: the store has no conditional writes (If-None-Match answered 501); checking keys with HEAD instead',
          );
        }
        // 409: a concurrent write of the same key; what HEAD finds decides.
      }
    }
    const head = await this.head(key, signal);
    if (head !== undefined && head.size === body.length && sameContent(head.etag, md5)) return 'existed';
    await this.call('PutObject', key, signal, (client) =>
      client.send(new PutObjectCommand(params), { abortSignal: signal }),
    );
    return 'created';
  }

  /** Aborts the multipart uploads under `prefix` started more than `olderThanMs` ago; returns how many. */
  async abortStaleUploads(prefix: string, olderThanMs: number, signal: AbortSignal): Promise<number> {
    await this.open();
    const { ListMultipartUploadsCommand, AbortMultipartUploadCommand } = await sdk();
    const bucket = this.options.bucket;
    const before = Date.now() - olderThanMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page: ListMultipartUploadsCommandOutput = await this.call('ListMultipartUploads', prefix, signal, (c) =>
        c.send(
          new ListMultipartUploadsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
          { abortSignal: signal },
        ),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Initiated !== undefined && upload.Initiated.getTime() > before) continue;
        const input: AbortMultipartUploadCommandInput = { Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId };
        try {
          await this.call('AbortMultipartUpload', upload.Key, signal, (c) =>
            c.send(new AbortMultipartUploadCommand(input), { abortSignal: signal }),
          );
          aborted++;
        } catch (error) {
          // Gone meanwhile (completed or aborted by another run): nothing left to clean.
          if (statusOf(error) !== 404) throw error;
        }
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) return aborted;
    }
  }

  /** The object under `key`, or undefined when there is none. */
  async head(key: string, signal: AbortSignal): Promise<Head | undefined> {
    await this.open();
    const { HeadObjectCommand } = await sdk();
    try {
      const answer = await this.call('HeadObject', key, signal, (client) =>
        client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: key }), { abortSignal: signal }),
      );
      return { size: answer.ContentLength ?? -1, etag: answer.ETag ?? '' };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  private async putMultipartOnce(
    key: string,
    localPath: string,
    bytes: number,
    signal: AbortSignal,
    headers: { contentType?: string; contentEncoding?: string },
  ): Promise<PutOutcome> {
    const conditional = conditionalSupported.has(this.storeKey);
    if (!conditional) {
      // Without a conditional completion (or before one is known to work: a 501 would come only after every
      // part was sent), ask first.
      const head = await this.head(key, signal);
      if (head !== undefined && head.size === bytes && (await this.sameMultipartContent(head.etag, localPath))) {
        return 'existed';
      }
    }
    const { Upload } = await sdk();
    const params = this.putParams(key, headers);
    params.Body = createReadStream(localPath, { highWaterMark: MiB });
    params.ContentLength = bytes;
    const algorithm = checksumAlgorithm(this.options.checksum);
    if (algorithm !== undefined) params.ChecksumAlgorithm = algorithm;
    if (conditional) params.IfNoneMatch = '*';
    const abortController = new AbortController();
    const onAbort = () => abortController.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const upload = new Upload({
        client: this.client!,
        params,
        partSize: this.options.part_size,
        queueSize: this.options.upload_concurrency,
        abortController,
      });
      await this.call('multipart upload', key, signal, () => upload.done());
      return 'created';
    } catch (error) {
      if (conditional && statusOf(error) === 412) return 'existed';
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
      (params.Body as NodeJS.ReadableStream & { destroy(): void }).destroy();
    }
  }

  /** Whether a multipart ETag (`md5-of-part-md5s-N`) is what `localPath` cut in part_size parts gives. */
  private async sameMultipartContent(etag: string, localPath: string): Promise<boolean> {
    const plain = etag.replaceAll('"', '');
    const dash = plain.indexOf('-');
    if (dash < 0) return sameContent(etag, await md5OfFile(localPath));
    const parts = Number(plain.slice(dash + 1));
    const digests: Buffer[] = [];
    const size = this.options.part_size;
    let current = createHash('md5');
    let filled = 0;
    for await (const chunk of createReadStream(localPath, { highWaterMark: MiB }) as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length) {
        const take = Math.min(size - filled, chunk.length - at);
        current.update(chunk.subarray(at, at + take));
        filled += take;
        at += take;
        if (filled === size) {
          digests.push(current.digest());
          current = createHash('md5');
          filled = 0;
        }
      }
    }
    if (filled > 0) digests.push(current.digest());
    // Another part size (a config change) gives another ETag for the same bytes: upload again, same content.
    if (digests.length !== parts) return false;
    return createHash('md5').update(Buffer.concat(digests)).digest('hex') === plain.slice(0, dash);
  }

  private putParams(key: string, headers: { contentType?: string; contentEncoding?: string }): PutObjectCommandInput {
    const o = this.options;
    const params: PutObjectCommandInput = { Bucket: o.bucket, Key: key };
    const contentType = o.content_type ?? headers.contentType;
    if (contentType !== undefined) params.ContentType = contentType;
    // lib-storage hands these params to CreateMultipartUpload too, so a multipart object gets its tags as well.
    if (o.tags !== undefined) params.Tagging = new URLSearchParams(o.tags).toString();
    if (headers.contentEncoding !== undefined) params.ContentEncoding = headers.contentEncoding;
    if (o.server_side_encryption !== undefined) params.ServerSideEncryption = o.server_side_encryption;
    if (o.ssekms_key_id !== undefined) params.SSEKMSKeyId = o.ssekms_key_id;
    if (o.storage_class !== undefined) params.StorageClass = o.storage_class;
    if (o.acl !== undefined) params.ACL = o.acl;
    return params;
  }

  private addChecksum(params: PutObjectCommandInput, body: Buffer, md5: Buffer): void {
    const algorithm = this.options.checksum;
    if (algorithm === 'md5') params.ContentMD5 = md5.toString('base64');
    else if (algorithm === 'sha256') params.ChecksumSHA256 = createHash('sha256').update(body).digest('base64');
    else if (algorithm === 'crc32' || algorithm === 'crc32c') params.ChecksumAlgorithm = checksumAlgorithm(algorithm);
  }

  /** One SDK call, its failure turned into a RetryableError that names the bucket and key. */
  private async call<T>(
    op: string,
    key: string,
    signal: AbortSignal,
    run: (client: S3Client) => Promise<T>,
  ): Promise<T> {
    const client = this.client;
    if (client === undefined) throw new RetryableError(`${this.who}: ${this.shown}: not open`);
    try {
      return await run(client);
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw this.describe(op, key, error);
    }
  }

  private describe(op: string, key: string, error: unknown): RetryableError {
    const e = error as {
      name?: string;
      code?: string;
      message?: string;
      $metadata?: { httpStatusCode?: number };
      $response?: { headers?: Record<string, string> };
    };
    const status = statusOf(error);
    const code = e.name && e.name !== 'Error' && e.name !== 'Unknown' ? e.name : (e.code ?? '');
    const where = `${this.who}: ${op} ${this.shown}${key === '' ? '' : `/${key}`}`;
    const what = [status === undefined ? undefined : String(status), code || undefined].filter(Boolean).join(' ');
    const hint = hintFor(status, code, this.options.bucket);
    // The SDK's own message for these is the store's (no secret in it); for network errors the code says enough.
    const text = e.message && e.message !== 'UnknownError' && e.message !== code ? `: ${e.message}` : '';
    const retryAfter = parseRetryAfter(e.$response?.headers?.['retry-after']);
    return new ObjectStoreError(`${where}: ${what || 'failed'}${text}${hint ? ` (${hint})` : ''}`, status, {
      cause: status === undefined ? error : undefined,
      retryAfterMs: retryAfter,
    });
  }
}

/** A failed call to the store: retryable, with the HTTP status when the store answered. */
export class ObjectStoreError extends RetryableError {
  constructor(
    message: string,
    readonly status: number | undefined,
    options: { cause?: unknown; retryAfterMs?: number | undefined },
  ) {
    super(message, options.retryAfterMs === undefined ? { cause: options.cause } : options);
  }
}

/** The HTTP status of a failed call, when the store answered. */
export function statusOf(error: unknown): number | undefined {
  if (error instanceof ObjectStoreError) return error.status;
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function hintFor(status: number | undefined, code: string, bucket: string): string | undefined {
  if (code === 'NoSuchBucket' || (status === 404 && code === 'NotFound')) return `bucket ${bucket} does not exist`;
  if (code === 'SignatureDoesNotMatch' || code === 'InvalidAccessKeyId' || code === 'InvalidClientTokenId') {
    return 'check access_key_id and secret_access_key';
  }
  if (code === 'CredentialsProviderError') return 'no credentials: set access_key_id/secret_access_key or AWS_* env';
  if (status === 403) return `check the credentials and the permissions on bucket ${bucket}`;
  if (code === 'InvalidStorageClass') return 'this store does not take that storage_class';
  if (status === 501) return 'this store lacks that feature; check server_side_encryption, storage_class, acl';
  return undefined;
}

function checksumAlgorithm(checksum: ObjectStoreOptions['checksum']): 'CRC32' | 'CRC32C' | 'SHA256' | undefined {
  if (checksum === 'crc32') return 'CRC32';
  if (checksum === 'crc32c') return 'CRC32C';
  if (checksum === 'sha256') return 'SHA256';
  return undefined;
}

/** A single-part ETag is the MD5 of the content (without SSE-KMS); anything else cannot be compared. */
function sameContent(etag: string, md5: Buffer): boolean {
  const plain = etag.replaceAll('"', '');
  if (!/^[0-9a-f]{32}$/i.test(plain)) return true;
  return plain.toLowerCase() === md5.toString('hex');
}

async function md5OfFile(path: string): Promise<Buffer> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB }) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest();
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - Date.now();
  if (Number.isNaN(ms)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/** For tests: forget what was learnt about the stores' conditional writes. */
export function forgetConditionalSupport(): void {
  conditionalUnsupported.clear();
  conditionalSupported.clear();
}
