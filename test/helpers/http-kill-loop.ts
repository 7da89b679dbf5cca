import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { type FluxoProcess, runFluxo } from './fluxo-process.ts';

export interface HttpKillLoop {
  /** Numbers sent (1..total), each in a request that was finally answered 200. */
  readonly total: number;
  /** Requests sent again after a kill (same Idempotency-Key, so the same `_id`s). */
  readonly resent: number;
}

/**
 * The real CLI with an http source (answered 200 only once every sink delivered the request's events; its
 * `Idempotency-Key` makes the event ids `<key>:<index>`) in front of `sinkYaml` (one sink, `inputs: [in]`).
 * `workers` senders POST requests of `perRequest` numbered events `{ n, message }`, each sent again with the
 * same key until it is answered 200, while Fluxo is killed with SIGKILL `kills` times and started again; they
 * send at least `requests` requests and go on until the last kill's restart, so that every kill lands
 * mid-stream however fast the machine is; then Fluxo is stopped gracefully. Asserts that every request was
 * acknowledged and that the kills hit requests; the caller checks what the destination holds.
 */
export async function httpKillLoop(
  t: TestContext,
  dir: string,
  sinkYaml: string,
  options: { kills: number; requests: number; perRequest: number; workers: number },
): Promise<HttpKillLoop> {
  const { kills, requests, perRequest, workers: workerCount } = options;
  const yaml = `
data_dir: ${join(dir, 'data')}
api: { address: 127.0.0.1:0 }
sources:
  in: { type: http, address: 127.0.0.1:0, path: /logs }
sinks:
${sinkYaml}`;
  // From the sources (tsx) on a loaded machine a start can take far longer than the banner wait's 20 s.
  const started = async (f: FluxoProcess) => {
    await f.waitFor(/source in .*listening/, 120_000);
    return f.port('in');
  };
  let fluxo: FluxoProcess = runFluxo(t, dir, yaml);
  let port = await started(fluxo);
  let starting: Promise<void> | undefined;

  const acknowledged = new Set<number>();
  let resent = 0;
  let next = 0;
  const send = async (k: number) => {
    const body = Array.from({ length: perRequest }, (_, i) => {
      const n = k * perRequest + i + 1;
      return JSON.stringify({ n, message: `number ${n}` });
    }).join('\n');
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) resent++;
      if (starting) await starting;
      try {
        const res = await request(`http://127.0.0.1:${port}/logs`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': `req-${k}` },
          body,
        });
        await res.body.text();
        if (res.statusCode === 200) {
          acknowledged.add(k);
          return;
        }
      } catch {
        // killed mid-request: nothing was acknowledged, send it again
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  let killing = true;
  const worker = async () => {
    while (killing || next < requests) await send(next++);
  };
  const workers = Promise.all(Array.from({ length: workerCount }, worker));

  for (let kill = 0; kill < kills; kill++) {
    // Let some requests through first, so that every kill lands mid-stream.
    const before = acknowledged.size;
    const deadline = Date.now() + 20_000;
    while (acknowledged.size < before + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
    let ready!: () => void;
    starting = new Promise((resolve) => {
      ready = resolve;
    });
    assert.equal(await fluxo.stop('SIGKILL'), null, `kill ${kill + 1}`);
    fluxo = runFluxo(t, dir, yaml);
    port = await started(fluxo);
    starting = undefined;
    ready();
  }
  killing = false;
  await workers;
  assert.equal(await fluxo.stop('SIGTERM'), 0, fluxo.stderr);

  assert.equal(acknowledged.size, next, 'a request was never acknowledged');
  assert.ok(resent > 0, 'no request had to be sent again: the kills did not hit a request');
  return { total: next * perRequest, resent };
}
