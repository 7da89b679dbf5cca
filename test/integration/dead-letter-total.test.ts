import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { fileSink } from '../../src/sinks/file.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';

function linesUnder(dir: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (!name.endsWith('.ndjson')) continue;
    for (const line of readFileSync(path, 'utf8').split('\n')) if (line !== '') out.push(JSON.parse(line));
  }
  return out;
}

describe('the dead letter path is total', () => {
  it('events no sink can encode (a cycle, 100,000 levels of nesting) reach a file dead letter sink, with their raw form', async (t) => {
    const dir = tempDir(t);
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  out: { type: file, inputs: [in], path: "${dir}/out/part.ndjson" }
  rejected: { type: file, inputs: [dead_letter], path: "${dir}/dead/part.ndjson" }
`,
      dir,
      [fileSink],
    );
    await p.topology.start();
    const cyclic: Event = { _id: 'cyclic', message: 'a cycle' };
    cyclic.self = cyclic;
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    const nested: Event = { _id: 'deep', message: 'deep', body: deep };
    await p.source('in').emit([{ _id: 'fine', message: 'fine' }, cyclic, nested]);
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    await p.topology.stop(5000);

    assert.deepEqual(
      linesUnder(join(dir, 'out')).map((e) => e._id),
      ['fine'],
    );
    const dead = linesUnder(join(dir, 'dead'));
    assert.deepEqual(dead.map((e) => e._id).sort(), ['cyclic', 'deep']);
    for (const e of dead) {
      const dl = e._dead_letter as { reason: string; component_id: string; unencodable: string };
      assert.equal(dl.component_id, 'out');
      assert.match(dl.reason, /cannot be encoded/);
      assert.ok(dl.unencodable.length > 0);
      assert.equal(typeof e._raw, 'string');
    }
    const raw = (id: string) => Buffer.from(String(dead.find((e) => e._id === id)!._raw), 'base64').toString();
    assert.match(raw('cyclic'), /Circular/);
    assert.match(raw('deep'), /\[Object\]/);
    assert.equal(dead.find((e) => e._id === 'cyclic')!.message, 'a cycle');
  });
});
