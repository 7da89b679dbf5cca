import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { FluxoProcess, runFluxo } from '../helpers/fluxo-process.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';

const line = (n: number) =>
  `203.0.113.${n % 250} - - [05/Mar/2025:14:02:17 +0000] "GET /item?seq=${n} HTTP/1.1" ${n % 7 === 0 ? 503 : 200} ${n} "-" "curl/8"`;

function config(dir: string, api = '{ address: 127.0.0.1:0 }'): string {
  return `
data_dir: ${dir}/data
api: ${api}
sources:
  tcp: { type: socket, mode: tcp, address: 127.0.0.1:0 }
transforms:
  access: { type: parse, inputs: [tcp], format: apache_combined, drop_field: true }
  by: { type: route, inputs: [access], routes: { errors: 'status >= 500' } }
sinks:
  out: { type: blackhole, inputs: [by.errors, by._unmatched] }
`;
}

/** How long `fluxo run` or `fluxo tap` may take to start: from src/ through tsx on a busy 2-core machine, long. */
const STARTUP_MS = 120_000;

async function running(t: { after: (fn: () => unknown) => void }, api?: string) {
  const dir = tempDir(t);
  const server = runFluxo(t, dir, config(dir, api));
  // From src/ through tsx on a busy 2-core machine, start-up can take far longer than the helper's default wait.
  const url = (await server.waitFor(/api (http:\/\/\S+)/, STARTUP_MS))[1]!;
  return { server, port: await server.port('tcp'), api: url };
}

/** Starts `fluxo tap …` and resolves once it is attached (its banner on stderr follows the server's 200). */
async function tap(args: string[]) {
  const p = new FluxoProcess(['tap', ...args]);
  await p.waitFor(/fluxo tap: \S+ at /, STARTUP_MS);
  return p;
}

const lines = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { component: string; output: string; event: Record<string, unknown> });

describe('fluxo tap', () => {
  it('streams the named component’s parsed events as NDJSON, stops at --limit and exits 0', async (t) => {
    const { port, api } = await running(t);
    const viewer = await tap(['access', '--api', api, '--limit', '3']);
    t.after(() => viewer.stop('SIGKILL'));
    await sendNumberedLines(port, { connections: 1, total: 10, payload: line });
    assert.equal(await viewer.exit(), 0, viewer.stderr);
    const got = lines(viewer.stdout);
    assert.equal(got.length, 3);
    for (const [i, l] of got.entries()) {
      assert.equal(l.component, 'access');
      assert.equal(l.output, '');
      assert.equal(l.event.path, `/item?seq=${i + 1}`);
      assert.equal(l.event.status, 200);
      assert.equal(l.event.message, undefined, 'the parsed event, not the raw line');
    }
    assert.match(viewer.stderr, /3 events shown, 0 skipped/);
  });

  it('samples every k-th event; the host:port form of --api works', async (t) => {
    const { port, api } = await running(t);
    const viewer = await tap(['access', '--api', api.replace('http://', ''), '--limit', '4', '--sample', '3']);
    t.after(() => viewer.stop('SIGKILL'));
    await sendNumberedLines(port, { connections: 1, total: 30, payload: line });
    assert.equal(await viewer.exit(), 0, viewer.stderr);
    assert.deepEqual(
      lines(viewer.stdout).map((l) => l.event.path),
      ['/item?seq=1', '/item?seq=4', '/item?seq=7', '/item?seq=10'],
    );
  });

  it('a route’s events are labelled with the output they took', async (t) => {
    const { port, api } = await running(t);
    const viewer = await tap(['by', '--api', api, '--limit', '30']);
    t.after(() => viewer.stop('SIGKILL'));
    await sendNumberedLines(port, { connections: 1, total: 30, payload: line });
    assert.equal(await viewer.exit(), 0, viewer.stderr);
    const got = lines(viewer.stdout);
    assert.equal(got.length, 30);
    for (const l of got) assert.equal(l.output, l.event.status === 503 ? 'errors' : '_unmatched', JSON.stringify(l));
    assert.equal(got.filter((l) => l.output === 'errors').length, 4);
  });

  it('an unknown component or an unreachable API exits 1 with a message', async (t) => {
    const { api } = await running(t);
    const unknown = new FluxoProcess(['tap', 'nope', '--api', api]);
    assert.equal(await unknown.exit(), 1);
    assert.match(unknown.stderr, /404 from .*: no component "nope"/);

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const freePort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const nobody = new FluxoProcess(['tap', 'access', '--api', `127.0.0.1:${freePort}`]);
    assert.equal(await nobody.exit(), 1);
    assert.match(nobody.stderr, /cannot reach the Fluxo API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);

    const badLimit = new FluxoProcess(['tap', 'access', '--limit', '0']);
    assert.notEqual(await badLimit.exit(), 0);
    assert.match(badLimit.stderr, /--limit must be a positive integer/);
  });

  it('with api.auth: refused without credentials, naming --token; streams with --token, $FLUXO_API_TOKEN or --user', async (t) => {
    const { port, api } = await running(t, '{ address: 127.0.0.1:0, auth: { strategy: bearer, token: s3cret } }');
    const bare = new FluxoProcess(['tap', 'access', '--api', api], { env: { FLUXO_API_TOKEN: '' } });
    assert.equal(await bare.exit(), 1);
    assert.match(bare.stderr, /401 from .*\/tap: unauthorized.*give --token \(or \$FLUXO_API_TOKEN\) or --user/);
    assert.equal(bare.stdout, '');
    const wrong = new FluxoProcess(['tap', 'access', '--api', api, '--token', 'nope']);
    assert.equal(await wrong.exit(), 1);
    assert.match(wrong.stderr, /401 .*--token or \$FLUXO_API_TOKEN given was refused/);

    const viewer = await tap(['access', '--api', api, '--limit', '2', '--token', 's3cret']);
    t.after(() => viewer.stop('SIGKILL'));
    const fromEnv = new FluxoProcess(['tap', 'access', '--api', api, '--limit', '2'], {
      env: { FLUXO_API_TOKEN: 's3cret' },
    });
    t.after(() => fromEnv.stop('SIGKILL'));
    await fromEnv.waitFor(/fluxo tap: \S+ at /, STARTUP_MS);
    await sendNumberedLines(port, { connections: 1, total: 5, payload: line });
    assert.equal(await viewer.exit(), 0, viewer.stderr);
    assert.deepEqual(
      lines(viewer.stdout).map((l) => l.event.path),
      ['/item?seq=1', '/item?seq=2'],
    );
    assert.equal(await fromEnv.exit(), 0, fromEnv.stderr);
    assert.equal(lines(fromEnv.stdout).length, 2);
  });

  it('with basic api.auth: --user user:password streams; a wrong password is refused', async (t) => {
    const { port, api } = await running(
      t,
      '{ address: 127.0.0.1:0, auth: { strategy: basic, user: ops, password: "pa:ss" } }',
    );
    const wrong = new FluxoProcess(['tap', 'access', '--api', api, '--user', 'ops:bad'], {
      env: { FLUXO_API_TOKEN: '' },
    });
    assert.equal(await wrong.exit(), 1);
    assert.match(wrong.stderr, /401 .*--user given was refused/);
    const viewer = await tap(['access', '--api', api, '--limit', '1', '--user', 'ops:pa:ss']);
    t.after(() => viewer.stop('SIGKILL'));
    await sendNumberedLines(port, { connections: 1, total: 3, payload: line });
    assert.equal(await viewer.exit(), 0, viewer.stderr);
    assert.equal(lines(viewer.stdout)[0]?.event.path, '/item?seq=1');
  });

  it('Ctrl-C ends the tap cleanly before the limit', async (t) => {
    const { api } = await running(t);
    const viewer = await tap(['access', '--api', api]);
    viewer.signal('SIGINT');
    assert.equal(await viewer.exit(), 0, viewer.stderr);
  });
});
