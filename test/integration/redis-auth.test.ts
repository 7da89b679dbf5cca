import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { redisSink } from '../../src/sinks/redis.ts';
import { redisSource } from '../../src/sources/redis.ts';
import { componentContext, recordingLogger, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { checkSequence } from '../helpers/fluxo-process.ts';
import { manualIntoSink, testPipeline, until } from '../helpers/pipeline.ts';
import { type RedisServer, type RedisServerOptions, startRedis } from '../helpers/servers/redis.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

// Auth and TLS of the redis sink and source against a real redis-server 7.0: requirepass, an ACL user and
// rediss:// with a private CA each deliver one way and the other; a wrong password or an untrusted certificate
// is a clear, logged, retried error.

async function server(t: TestContext, options: RedisServerOptions): Promise<RedisServer> {
  const s = await startRedis(t, options);
  if (!s) throw new Error('unreachable: skipped');
  return s;
}

const numbered = (from: number, count: number): Event[] =>
  Array.from({ length: count }, (_, i) => ({ _id: `n-${from + i}`, message: `event ${from + i}`, n: from + i }));

function sinkPipeline(t: TestContext, options: Record<string, unknown>) {
  const sink = { type: 'redis', key: 'logs', connect_timeout: '2s', ...options };
  return manualIntoSink(t, sink, [redisSink], tempDir(t, 'fluxo-redis-auth-'));
}

async function sourcePipeline(t: TestContext, group: string, options: Record<string, unknown>) {
  const { logger, lines } = recordingLogger('info');
  const config = {
    sources: {
      in: { type: 'redis', key: 'logs', group, consumer: 'c1', block: '200ms', connect_timeout: '2s', ...options },
    },
    sinks: { out: { type: 'controlled', inputs: ['in'] } },
  };
  const p = testPipeline(stringify(config), tempDir(t, 'fluxo-redis-auth-src-'), [redisSource], logger);
  t.after(() => p.topology.stop(2000));
  await p.topology.start();
  return { ...p, lines, out: () => p.sink('out').written };
}

async function publish(t: TestContext, options: Record<string, unknown>, count = 5, from = 1): Promise<void> {
  const p = await sinkPipeline(t, options);
  await p.emit(numbered(from, count));
  await until(() => p.settled.length === 1, 'the acknowledgement', 20_000);
  assert.deepEqual(p.settled, ['delivered']);
}

async function readsAll(t: TestContext, group: string, options: Record<string, unknown>, count = 5) {
  const p = await sourcePipeline(t, group, options);
  await until(() => p.out().length >= count, `${count} events read`, 20_000);
  assert.deepEqual(
    checkSequence(
      p.out().map((e) => e.n as number),
      count,
    ),
    { missing: [], duplicated: [] },
  );
}

async function sourceRefused(t: TestContext, options: Record<string, unknown>, reason: RegExp) {
  const p = await sourcePipeline(t, 'refused', options);
  await until(
    () => p.lines.some((l) => l.msg === 'redis source: cannot read; retrying' && reason.test(String(l.err))),
    'the source warning',
    20_000,
  );
  assert.equal(p.out().length, 0);
}

async function sinkRefused(t: TestContext, options: Record<string, unknown>, reason: RegExp) {
  const sink = redisSink.build(redisSink.options.parse({ key: 'logs', ...options }), componentContext('out', '/tmp'));
  t.after(() => sink.stop());
  await assert.rejects(sink.connect!(new AbortController().signal), (error: unknown) => {
    // Retryable: the runner logs it and tries again with backoff (a password fixed on the server is picked up).
    assert.ok(error instanceof RetryableError);
    assert.match(error.message, reason);
    return true;
  });
  const p = await sinkPipeline(t, options);
  void p.emit(numbered(100, 1));
  await until(
    () => p.lines.some((l) => l.msg === 'sink could not connect, retrying' && reason.test(String(l.err))),
    'the sink warning',
    20_000,
  );
  assert.deepEqual(p.settled, []);
}

describe('redis auth and TLS', { timeout: 120_000 }, () => {
  it('requirepass and an ACL user: delivered both ways; a wrong password is refused clearly', async (t) => {
    const redis = await server(t, { password: 'pa55', users: ['alice on >secret ~* &* +@all'] });
    await publish(t, { endpoint: redis.url, password: 'pa55' }, 3);
    await readsAll(t, 'by-password', { endpoint: redis.url, password: 'pa55' }, 3);
    const alice = { endpoint: redis.url, username: 'alice', password: 'secret' };
    await publish(t, alice, 3, 4);
    await readsAll(t, 'by-alice', alice, 6);
    const wrong = /WRONGPASS/;
    await sinkRefused(t, { endpoint: redis.url, username: 'alice', password: 'nope' }, wrong);
    await sourceRefused(t, { endpoint: redis.url, password: 'nope' }, wrong);
    // No password at all: the first command answers NOAUTH.
    await sourceRefused(t, { endpoint: redis.url }, /NOAUTH/);
  });

  it('rediss:// with ca_file: delivered both ways; without the CA the sink and the source log and retry', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t, 'fluxo-redis-tls-'));
    const redis = await server(t, {
      tls: { certFile: certs.serverCrt, keyFile: certs.serverKey, caFile: certs.caFile },
    });
    const endpoint = redis.tlsUrl!;
    await publish(t, { endpoint, tls: { ca_file: certs.caFile } });
    await readsAll(t, 'by-tls', { endpoint, tls: { ca_file: certs.caFile } });
    const untrusted = /certificate|self.signed/i;
    await sinkRefused(t, { endpoint }, untrusted);
    await sourceRefused(t, { endpoint }, untrusted);
  });
});
