import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser } from '@nats-io/nkeys';
import { stringify } from 'yaml';
import { FluxoError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { natsSink } from '../../src/sinks/nats.ts';
import { natsSource } from '../../src/sources/nats.ts';
import { componentContext, recordingLogger, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { checkSequence } from '../helpers/fluxo-process.ts';
import { manualIntoSink, testPipeline, until } from '../helpers/pipeline.ts';
import { type NatsServer, type NatsServerOptions, startNatsServer } from '../helpers/servers/nats.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

// Auth and TLS of the nats sink and source against a real nats-server: each mechanism delivers one way and the
// other, and a refused credential or an untrusted certificate is a clear, logged, retried error (never a crash).
// `creds` (a user JWT and its NKey seed) runs the server in operator mode, with JWTs issued by the test through
// @nats-io/jwt (what nsc does) and the account preloaded into a memory resolver.

async function server(t: TestContext, options: NatsServerOptions): Promise<NatsServer> {
  const s = await startNatsServer(t, options);
  if (!s) throw new Error('unreachable: skipped');
  return s;
}

function nkeyPair(): { seed: string; publicKey: string } {
  const user = createUser();
  return { seed: new TextDecoder().decode(user.getSeed()), publicKey: user.getPublicKey() };
}

const numbered = (from: number, count: number): Event[] =>
  Array.from({ length: count }, (_, i) => ({ _id: `n-${from + i}`, message: `event ${from + i}`, n: from + i }));

/** manual source `in` → nats sink `out` with `options`; resolves the acknowledgements of emit(). */
function sinkPipeline(t: TestContext, options: Record<string, unknown>) {
  const sink = {
    type: 'nats',
    subject: 'auth.app',
    create_stream: { name: 'AUTH', subjects: ['auth.>'] },
    connect_timeout: '2s',
    ...options,
  };
  return manualIntoSink(t, sink, [natsSink], tempDir(t, 'fluxo-nats-auth-'));
}

/** nats source `in` (stream AUTH, its own durable) → controlled sink `out`. */
async function sourcePipeline(t: TestContext, durable: string, options: Record<string, unknown>) {
  const { logger, lines } = recordingLogger('info');
  const config = {
    sources: {
      in: {
        type: 'nats',
        stream: 'AUTH',
        durable,
        batch_size: 50,
        fetch_wait: '1s',
        connect_timeout: '2s',
        ...options,
      },
    },
    sinks: { out: { type: 'controlled', inputs: ['in'] } },
  };
  const p = testPipeline(stringify(config), tempDir(t, 'fluxo-nats-auth-src-'), [natsSource], logger);
  t.after(() => p.topology.stop(2000));
  await p.topology.start();
  return { ...p, lines, out: () => p.sink('out').written };
}

const ns = (events: Event[]) => events.map((e) => e.n as number);

/** Publishes 1..count through a sink pipeline with `options`; resolves once the batch was delivered. */
async function publish(t: TestContext, options: Record<string, unknown>, count = 5): Promise<void> {
  const p = await sinkPipeline(t, options);
  await p.emit(numbered(1, count));
  await until(() => p.settled.length === 1, 'the acknowledgement', 20_000);
  assert.deepEqual(p.settled, ['delivered']);
}

async function readsAll(t: TestContext, durable: string, options: Record<string, unknown>, count = 5) {
  const p = await sourcePipeline(t, durable, options);
  await until(() => p.out().length >= count, `${count} events read`, 20_000);
  assert.deepEqual(checkSequence(ns(p.out()), count), { missing: [], duplicated: [] });
}

/** The source logs the refusal with its reason and keeps retrying; nothing is read. */
async function sourceRefused(t: TestContext, options: Record<string, unknown>, reason: RegExp) {
  const p = await sourcePipeline(t, 'refused', options);
  await until(
    () => p.lines.some((l) => l.msg === 'nats source: cannot read; retrying' && reason.test(String(l.err))),
    'the source warning',
    20_000,
  );
  assert.equal(p.out().length, 0);
  return p;
}

describe('nats auth and TLS', { timeout: 120_000 }, () => {
  it('NKey and user/password users: delivered both ways; a foreign NKey and a wrong password are refused clearly', async (t) => {
    const key = nkeyPair();
    const nats = await server(t, {
      authorization: `users = [ { nkey: "${key.publicKey}" }, { user: "fluxo", password: "pa55" } ]`,
    });
    const servers = [nats.url];
    await publish(t, { servers, auth: { strategy: 'nkey', seed: key.seed } });
    const seedFile = join(tempDir(t, 'fluxo-nats-seed-'), 'user.nk');
    writeFileSync(seedFile, `${key.seed}\n`);
    await readsAll(t, 'by-nkey', { servers, auth: { strategy: 'nkey', seed_file: seedFile } });
    await readsAll(t, 'by-user', { servers, auth: { strategy: 'user', user: 'fluxo', password: 'pa55' } });

    // The sink's connect names the refusal; in a pipeline the runner logs it and retries with backoff.
    const foreign = nkeyPair();
    const sink = natsSink.build(
      natsSink.options.parse({ servers, subject: 'auth.app', auth: { strategy: 'nkey', seed: foreign.seed } }),
      componentContext('out', '/tmp'),
    );
    t.after(() => sink.stop());
    await assert.rejects(sink.connect!(new AbortController().signal), (error: unknown) => {
      assert.ok(error instanceof FluxoError);
      assert.equal(error.code, 'FLUXO_NATS_AUTH');
      assert.match(error.message, /refused the credentials/);
      return true;
    });
    const refused = await sinkPipeline(t, { servers, auth: { strategy: 'user', user: 'fluxo', password: 'wrong' } });
    void refused.emit(numbered(100, 1));
    await until(
      () =>
        refused.lines.filter(
          (l) => l.msg === 'sink could not connect, retrying' && /refused the credentials/.test(String(l.err)),
        ).length >= 1,
      'the sink warning',
      20_000,
    );
    assert.deepEqual(refused.settled, []);
    await sourceRefused(
      t,
      { servers, auth: { strategy: 'user', user: 'fluxo', password: 'wrong' } },
      /refused the credentials/,
    );
  });

  it('token: the sink publishes and the source reads with it; a wrong token is refused clearly', async (t) => {
    const nats = await server(t, { authorization: 'token: "s3cret"' });
    const servers = [nats.url];
    await publish(t, { servers, auth: { strategy: 'token', token: 's3cret' } });
    await readsAll(t, 'by-token', { servers, auth: { strategy: 'token', token: 's3cret' } });
    await sourceRefused(t, { servers, auth: { strategy: 'token', token: 'nope' } }, /refused the credentials/);
    // No credentials at all is the same refusal, not a hang.
    await sourceRefused(t, { servers }, /refused the credentials|authorization/i);
  });

  it('creds (operator mode, JWT + NKey): delivered both ways; creds of an account the server does not trust are refused', async (t) => {
    const operator = createOperator();
    const account = createAccount();
    // In operator mode every limit is the account's, JetStream included (an absent one is 0): unlimited here.
    const limits = {
      ...{ conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, leaf: -1, wildcards: true },
      ...{ mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
    };
    const accountJwt = await encodeAccount('FLUXO', account, { limits }, { signer: operator });
    // JetStream in operator mode needs a system account for its internal subscriptions.
    const system = createAccount();
    const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
    const nats = await server(t, {
      config: [
        `operator: ${await encodeOperator('fluxo-test', operator)}`,
        `system_account: ${system.getPublicKey()}`,
        'resolver: MEMORY',
        `resolver_preload: { ${account.getPublicKey()}: ${accountJwt}, ${system.getPublicKey()}: ${systemJwt} }`,
      ].join('\n'),
    });
    const dir = tempDir(t, 'fluxo-nats-creds-');
    const credsFile = async (issuer: typeof account, name: string) => {
      const user = createUser();
      const path = join(dir, `${name}.creds`);
      writeFileSync(path, fmtCreds(await encodeUser(name, user, issuer), user));
      return path;
    };
    const servers = [nats.url];
    const creds = await credsFile(account, 'fluxo');
    await publish(t, { servers, auth: { strategy: 'creds', creds_file: creds } });
    await readsAll(t, 'by-creds', { servers, auth: { strategy: 'creds', creds_file: creds } });

    const stranger = await credsFile(createAccount(), 'stranger');
    await sourceRefused(
      t,
      { servers, auth: { strategy: 'creds', creds_file: stranger } },
      /refused the credentials|authorization/i,
    );
  });

  it('TLS with a self-signed CA: both ways with ca_file; without the CA the source logs and retries', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t, 'fluxo-nats-tls-'));
    const nats = await server(t, { tls: { certFile: certs.serverCrt, keyFile: certs.serverKey } });
    const servers = [nats.tlsUrl];
    await publish(t, { servers, tls: { ca_file: certs.caFile } });
    await readsAll(t, 'by-tls', { servers, tls: { ca_file: certs.caFile } });
    await sourceRefused(t, { servers, tls: {} }, /cannot connect to NATS.*(certificate|self.signed)/i);
  });
});
