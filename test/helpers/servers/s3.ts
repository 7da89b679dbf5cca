import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';
import { reservedPort } from '../net.ts';

/**
 * A real S3 implementation for tests: Debian's OpenStack Swift (2.30) as a single node, its proxy with the
 * `s3api` middleware and `tempauth`, all on 127.0.0.1 in a temporary directory.
 *
 * What this server has (checked against it): PutObject with Content-MD5 (verified: a wrong one is BadDigest),
 * multipart uploads (parts of at least 5 MiB but the last, S3-style ETags `md5-of-part-md5s-N`),
 * ListMultipartUploads and AbortMultipartUpload, HeadObject, ListObjectsV2, GetObject, canned ACLs, SigV4.
 * What it lacks: conditional writes (`If-None-Match: *` answers 501 NotImplemented "Conditional object PUTs
 * are not supported"); server-side encryption (501); storage classes other than STANDARD (400
 * InvalidStorageClass); `aws-chunked` bodies (501), which the AWS SDK sends for a streamed body when it computes
 * flexible checksums itself (clients must use `requestChecksumCalculation: 'WHEN_REQUIRED'`); and it accepts
 * `x-amz-checksum-*` headers without checking them (a wrong CRC32 is stored). Objects are fsynced by the
 * object server before a PUT is answered, so they survive kill9().
 */
export interface S3Server {
  readonly endpoint: string;
  readonly region: string;
  /** tempauth's `<account>:<user>`. */
  readonly accessKeyId: string;
  /** tempauth's key for that user: random per server. */
  readonly secretAccessKey: string;
  /** A client of the test's own (path style, no retries) to create buckets and read what the server holds. */
  readonly client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Every object under `prefix` (all pages): key, size, ETag. */
  list(bucket: string, prefix?: string): Promise<{ key: string; size: number; etag: string }[]>;
  get(bucket: string, key: string): Promise<Buffer>;
  /** Multipart uploads in progress under `prefix`. */
  uploads(bucket: string, prefix?: string): Promise<{ key: string; uploadId: string }[]>;
  /**
   * Every object the object server holds on its disk, read synchronously (`<bucket>/<key>` → bytes); for
   * checks that cannot await, such as the sink conformance suite's. Single-part objects only (a multipart
   * object is a manifest over segments).
   */
  objectsOnDisk(): Map<string, Buffer>;
  /** SIGKILL of the process that runs the proxy and storage servers: no shutdown, in-flight requests cut. */
  kill9(): Promise<void>;
  /** Starts every server again on the same ports with the same data; resolves once all answer. */
  restart(): Promise<void>;
  /** The pid of the process that serves (for CPU figures); throws while it is down. */
  pid(): number;
  /** SIGSTOP / SIGCONT of the servers: connections are accepted by the kernel and never answered. */
  pause(): void;
  resume(): void;
}

export interface S3ServerOptions {
  /** Buckets to create once it runs. */
  buckets?: string[];
  /** Leave it down: `restart()` starts it (a destination that is down at start) and creates `buckets`. */
  down?: boolean;
}

const SWIFT_DIR = join(dirname(fileURLToPath(import.meta.url)), 'swift');
const SERVERS = ['account', 'container', 'object', 'proxy'] as const;
type ServerName = (typeof SERVERS)[number];

function storageConfig(name: string, port: number, dir: string): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = ${process.env.USER ?? 'root'}
swift_dir = ${dir}/etc
devices = ${dir}/srv
mount_check = false
disable_fallocate = true
log_level = WARNING
log_address = ${dir}/no-syslog

[pipeline:main]
pipeline = healthcheck ${name}-server

[filter:healthcheck]
use = egg:swift#healthcheck

[app:${name}-server]
use = egg:swift#${name}

[${name}-replicator]
[${name}-updater]
[${name}-auditor]
`;
}

function proxyConfig(port: number, dir: string, secret: string): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = ${process.env.USER ?? 'root'}
swift_dir = ${dir}/etc
log_level = WARNING
log_address = ${dir}/no-syslog

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck cache listing_formats s3api tempauth copy slo dlo proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# A storage server killed mid-request is noticed at once rather than after the 10 s default.
conn_timeout = 1
node_timeout = 10

[filter:cache]
paste.filter_factory = fluxo_local_cache:filter_factory

[filter:tempauth]
use = egg:swift#tempauth
user_fluxo_tester = ${secret} .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:healthcheck]
use = egg:swift#healthcheck
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
`;
}

/** Resolves once GET /healthcheck on the port answers 200; fails when the process exited or after 60 s. */
async function waitHealthy(port: number, child: ChildProcess, output: () => string, what: string): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/healthcheck', method: 'GET', timeout: 2_000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.once('error', () => resolve(false));
      req.once('timeout', () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${what} did not answer /healthcheck on ${port}:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a single-node Swift with s3api on 127.0.0.1 for one test, stopped when the test ends. The account,
 * container and object servers and the proxy are Swift's own WSGI apps and config files, served by one Python
 * process (swift/serve.py: one import of Swift instead of four, ~2 s to answer instead of ~12 s on a busy
 * 2-core machine), each on a port of its own; the device directory is under the test's temp dir (its file
 * system needs user xattrs, which ext4 and tmpfs have; serve.py says so when it has none). Resolves undefined
 * (the test skipped) where Swift is not installed, except in CI.
 */
export async function startS3Server(t: TestContext, options: S3ServerOptions = {}): Promise<S3Server | undefined> {
  const programs = {} as Record<ServerName, string>;
  for (const name of SERVERS) {
    const program = requireProgram(t, `swift-${name}-server`, name === 'proxy' ? 'swift-proxy' : `swift-${name}`);
    if (!program) return undefined;
    programs[name] = program;
  }
  // The interpreter Swift's own scripts run with (a python3 earlier on PATH, e.g. pyenv's, lacks its modules).
  const python = /^#!\s*(\S+)/.exec(readFileSync(programs.proxy, 'utf8').slice(0, 200))?.[1] ?? '/usr/bin/python3';
  const dir = tempDir(t, 'fluxo-s3-');
  const ports = {} as Record<ServerName, number>;
  for (const name of SERVERS) ports[name] = await reservedPort(t);
  const secret = randomBytes(12).toString('hex');
  mkdirSync(join(dir, 'etc'));
  mkdirSync(join(dir, 'srv', 'd1'), { recursive: true });
  for (const name of ['account', 'container', 'object'] as const) {
    writeFileSync(join(dir, 'etc', `${name}-server.conf`), storageConfig(name, ports[name], dir));
  }
  writeFileSync(join(dir, 'etc', 'proxy-server.conf'), proxyConfig(ports.proxy, dir, secret));

  let child: ChildProcess | undefined;
  let output = '';
  const env = { ...process.env, PYTHONPATH: SWIFT_DIR, PYTHONDONTWRITEBYTECODE: '1' };
  const serveArgs = [join(SWIFT_DIR, 'serve.py'), join(dir, 'etc'), join(dir, 'srv', 'd1')];
  serveArgs.push(String(ports.account), String(ports.container), String(ports.object));
  const launch = async () => {
    output = '';
    // Its own process group: kill9() signals the group, so nothing it started outlives it.
    const c = spawn(python, serveArgs, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-6000);
    };
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    child = c;
    await Promise.all(SERVERS.map((name) => waitHealthy(ports[name], c, () => output, `swift ${name} server`)));
  };
  const kill9 = async () => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      c.kill('SIGKILL');
    }
    await exited;
  };

  const client = new S3Client({
    endpoint: `http://127.0.0.1:${ports.proxy}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'fluxo:tester', secretAccessKey: secret },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
  t.after(async () => {
    client.destroy();
    await kill9();
  });
  if (!options.down) await launch();

  const server: S3Server = {
    endpoint: `http://127.0.0.1:${ports.proxy}`,
    region: 'us-east-1',
    accessKeyId: 'fluxo:tester',
    secretAccessKey: secret,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async list(bucket, prefix) {
      const out: { key: string; size: number; etag: string }[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? '' });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return out;
    },
    async get(bucket, key) {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await answer.Body!.transformToByteArray());
    },
    async uploads(bucket, prefix) {
      const answer = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (answer.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
    },
    objectsOnDisk() {
      const out = execFileSync(python, [join(SWIFT_DIR, 'dump_objects.py'), join(dir, 'srv', 'd1')], {
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
      });
      const objects = new Map<string, Buffer>();
      for (const line of out.split('\n')) {
        if (line === '') continue;
        const { key, data } = JSON.parse(line) as { key: string; data: string };
        objects.set(key, Buffer.from(data, 'base64'));
      }
      return objects;
    },
    pid() {
      if (child?.pid === undefined) throw new Error('the S3 server is down');
      return child.pid;
    },
    kill9,
    async restart() {
      await kill9();
      await launch();
      for (const bucket of pending.splice(0)) await server.createBucket(bucket);
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };
  // Started down, its buckets are created by the first restart().
  const pending = options.down ? [...(options.buckets ?? [])] : [];
  if (!options.down) for (const bucket of options.buckets ?? []) await server.createBucket(bucket);
  return server;
}
