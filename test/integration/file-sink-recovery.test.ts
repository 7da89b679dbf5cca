import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { GzipMemberWriter } from '../../src/sinks/file/gzip-member.ts';
import { ownerToken } from '../../src/sinks/file/open-file.ts';
import { fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { driven } from '../helpers/sink-driver.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/file-sink-writer.ts', import.meta.url));

/** Runs the fixture; `limitKiB` puts it under `ulimit -f` (RLIMIT_FSIZE: writes past it are cut short, EFBIG). */
function spawnWriter(args: string[], limitKiB?: number): ChildProcess & { output: () => string } {
  const command = [process.execPath, '--import', 'tsx', FIXTURE, ...args];
  const child =
    limitKiB === undefined
      ? spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -f ${limitKiB} && exec "$@"`, 'bash', ...command], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return Object.assign(child, { output: () => `stdout:\n${stdout.slice(-2000)}\nstderr:\n${stderr.slice(-4000)}` });
}

function allFiles(root: string): string[] {
  try {
    return (readdirSync(root, { recursive: true }) as string[]).filter((f) => statSync(join(root, f)).isFile()).sort();
  } catch {
    return [];
  }
}
const isHidden = (rel: string) => rel.split('/').pop()!.startsWith('.');

/** Every line of every visible file, parsed; a torn or invalid line fails the test. */
function readEvents(root: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const f of allFiles(root).filter((name) => !isHidden(name))) {
    const raw = readFileSync(join(root, f));
    const text = (f.endsWith('.gz') ? gunzipSync(raw) : raw).toString();
    assert.ok(text.endsWith('\n'), `${f} does not end with a whole line`);
    for (const line of text.slice(0, -1).split('\n')) {
      try {
        events.push(JSON.parse(line));
      } catch {
        assert.fail(`torn or invalid line in ${f}: ${line.slice(0, 120)}`);
      }
    }
  }
  return events;
}

function recoveringSink(dataDir: string, path: string) {
  const ctx = componentContext('master', dataDir, 'sink', 'file');
  return { sink: fileSink.build(fileSink.options.parse({ path }), ctx), ctx };
}

async function recoveredCount(ctx: ReturnType<typeof componentContext>): Promise<number> {
  const text = await ctx.pipelineMetrics.registry.getSingleMetricAsString('fluxo_file_sink_files_recovered_total');
  return Number(/} (\d+)$/m.exec(text)?.[1] ?? 0);
}

describe('file sink: kill -9 mid-stream, then recovery at start', () => {
  for (const path of ['dt=%Y-%m-%d/hour=%H/part.ndjson', 'dt=%Y-%m-%d/hour=%H/part.ndjson.gz']) {
    it(`${path}: every batch acknowledged before the kill is in a final file, once, no torn line`, async (t) => {
      const dir = tempDir(t);
      const out = join(dir, 'out');
      const dataDir = join(dir, 'data');
      // 256 KiB files: some roll (final) before the kill, three partitions are open at the kill
      const child = spawnWriter(['stream', dataDir, join(out, path), String(256 * 1024)]);
      t.after(() => child.kill('SIGKILL'));
      const exited = once(child, 'exit');
      let acknowledged = 0;
      child.stdout!.on('data', () => {
        const matches = child.output().match(/written \d+/g);
        acknowledged = matches === null ? 0 : Number(matches[matches.length - 1]!.slice(8));
        if (acknowledged >= 40) child.kill('SIGKILL');
      });
      const [code, signal] = await exited;
      assert.equal(signal, 'SIGKILL', `the writer ended by itself (code ${code})\n${child.output()}`);
      if (!child.stdout!.readableEnded) await once(child.stdout!, 'end');
      const reported = child
        .output()
        .match(/written \d+/g)!
        .map((m) => Number(m.slice(8)));
      acknowledged = Math.max(...reported);
      assert.ok(acknowledged >= 40);

      const leftBehind = allFiles(out).filter((f) => f.endsWith('.inprogress'));
      assert.ok(leftBehind.length >= 1, 'the kill left no in-progress file');

      const { sink, ctx } = recoveringSink(dataDir, join(out, path));
      await sink.start!();
      assert.equal(await recoveredCount(ctx), leftBehind.length);
      assert.deepEqual(allFiles(out).filter(isHidden), [], 'recovery left hidden files behind');
      await sink.stop();

      const ids = readEvents(out).map((e) => String(e._id));
      assert.equal(new Set(ids).size, ids.length, 'duplicated events');
      const have = new Set(ids);
      const missing: string[] = [];
      for (let n = 1; n <= acknowledged; n++) {
        for (let i = 0; i < 300; i++) if (!have.has(`${n}-${i}`)) missing.push(`${n}-${i}`);
      }
      assert.deepEqual(missing.slice(0, 20), [], `${missing.length} acknowledged events missing`);
    });
  }
});

describe('file sink: a real partial write (ulimit -f → EFBIG) retried, then a good write', () => {
  for (const path of ['dt=%Y-%m-%d/hour=%H/part.ndjson', 'dt=%Y-%m-%d/hour=%H/part.ndjson.gz']) {
    it(`${path}: the failed batch leaves no byte behind, the others are whole`, async (t) => {
      const dir = tempDir(t);
      const out = join(dir, 'out');
      const child = spawnWriter(['fsize', join(dir, 'data'), join(out, path)], 64);
      t.after(() => child.kill('SIGKILL'));
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, child.output());
      const result = JSON.parse(child.output().split('\n')[1]!);
      assert.deepEqual(result, { a: 'ok', b1: 'EFBIG', b2: 'EFBIG', c: 'ok' });
      assert.deepEqual(allFiles(out).filter(isHidden), []);
      const events = readEvents(out);
      const batches = events.map((e) => e.batch);
      assert.equal(batches.filter((b) => b === 1).length, 40);
      assert.equal(batches.filter((b) => b === 3).length, 40);
      assert.equal(batches.filter((b) => b === 2).length, 0, 'bytes of the failed write survived');
      assert.equal(events.length, 80);
    });
  }
});

describe('file sink: recovery of damaged and unusual in-progress files', () => {
  const FINAL = 'part-20261124T074501Z-1a2b3c4d.ndjson';

  function setupDir(t: { after: (fn: () => void) => void }) {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const dataDir = join(dir, 'data');
    const partition = join(out, 'dt=2026-11-24');
    mkdirSync(partition, { recursive: true });
    const owner = ownerToken(dataDir, 'master');
    return { out, dataDir, partition, owner, path: join(out, 'dt=%Y-%m-%d/part.ndjson') };
  }

  async function gzipParts(...chunks: string[]): Promise<Buffer[]> {
    const writer = new GzipMemberWriter();
    const parts: Buffer[] = [];
    for (const c of chunks) {
      parts.push(await writer.encode(Buffer.from(c)));
      writer.commit();
    }
    return parts;
  }

  it('plain: a torn last line is cut, whole lines are kept under the final name', async (t) => {
    const { out, dataDir, partition, owner, path } = setupDir(t);
    writeFileSync(join(partition, `.${FINAL}.${owner}.inprogress`), '{"_id":"a"}\n{"_id":"b"}\n{"_id":"c","mess');
    const { sink } = recoveringSink(dataDir, path);
    await sink.start!();
    assert.deepEqual(allFiles(out), [`dt=2026-11-24/${FINAL}`]);
    assert.equal(readFileSync(join(partition, FINAL), 'utf8'), '{"_id":"a"}\n{"_id":"b"}\n');
  });

  it('gzip: a member cut mid-write is read up to its last flush, rewritten as a complete gzip file', async (t) => {
    const { out, dataDir, partition, owner, path } = setupDir(t);
    const [a, b] = await gzipParts('{"_id":"a"}\n', '{"_id":"b"}\n{"_id":"c","torn-without-newline');
    writeFileSync(
      join(partition, `.${FINAL}.gz.${owner}.inprogress`),
      Buffer.concat([a!, b!.subarray(0, b!.length - 3)]),
    );
    const { sink } = recoveringSink(dataDir, `${path}.gz`);
    await sink.start!();
    assert.deepEqual(allFiles(out), [`dt=2026-11-24/${FINAL}.gz`]);
    const text = gunzipSync(readFileSync(join(partition, `${FINAL}.gz`))).toString();
    assert.ok(text.startsWith('{"_id":"a"}\n'), text);
    assert.ok(text.endsWith('\n') && !text.includes('torn'), text);
  });

  it('gzip: damage in the middle never crashes start(); what decompresses is kept, the original too', async (t) => {
    const { out, dataDir, partition, owner, path } = setupDir(t);
    const [a, , c] = await gzipParts('{"_id":"a"}\n', 'x', '{"_id":"c"}\n');
    // 0xff starts a deflate block of the reserved type 3: zlib stops with "invalid block type"
    writeFileSync(join(partition, `.${FINAL}.gz.${owner}.inprogress`), Buffer.concat([a!, Buffer.alloc(64, 0xff), c!]));
    // and one that is nothing but a gzip magic number and garbage
    writeFileSync(join(partition, `.other.ndjson.gz.${owner}.inprogress`), Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5]));
    const { sink } = recoveringSink(dataDir, `${path}.gz`);
    await sink.start!();
    assert.equal(gunzipSync(readFileSync(join(partition, `${FINAL}.gz`))).toString(), '{"_id":"a"}\n');
    assert.deepEqual(allFiles(out), [
      `dt=2026-11-24/.other.ndjson.gz.${owner}.damaged`,
      `dt=2026-11-24/.${FINAL}.gz.${owner}.damaged`,
      `dt=2026-11-24/${FINAL}.gz`,
    ]);
  });

  it('an empty or line-less temp file is removed, and a leftover of an interrupted gzip rewrite too', async (t) => {
    const { out, dataDir, partition, owner, path } = setupDir(t);
    writeFileSync(join(partition, `.${FINAL}.${owner}.inprogress`), '');
    writeFileSync(join(partition, `.b-${FINAL}.${owner}.inprogress`), '{"torn');
    writeFileSync(join(partition, `.c-${FINAL}.gz.${owner}.recovery`), 'half a rewrite');
    const { sink } = recoveringSink(dataDir, path);
    await sink.start!();
    assert.deepEqual(allFiles(out), []);
  });

  it('a recovery interrupted after its rename is redone without a duplicate file', async (t) => {
    const { out, dataDir, partition, owner, path } = setupDir(t);
    const [a] = await gzipParts('{"_id":"a"}\n');
    writeFileSync(join(partition, `.${FINAL}.gz.${owner}.inprogress`), a!);
    writeFileSync(join(partition, `${FINAL}.gz`), Buffer.concat([a!, Buffer.from([1, 0, 0, 0xff, 0xff])])); // stale
    const { sink } = recoveringSink(dataDir, `${path}.gz`);
    await sink.start!();
    assert.deepEqual(allFiles(out), [`dt=2026-11-24/${FINAL}.gz`]);
    assert.equal(gunzipSync(readFileSync(join(partition, `${FINAL}.gz`))).toString(), '{"_id":"a"}\n');
  });

  it("another instance's in-progress file is left alone while fresh, adopted once stale", async (t) => {
    const { out, dataDir, partition, path } = setupDir(t);
    const foreign = join(partition, `.${FINAL}.deadbeef.inprogress`);
    writeFileSync(foreign, '{"_id":"theirs"}\n');
    await recoveringSink(dataDir, path).sink.start!();
    assert.deepEqual(allFiles(out), [`dt=2026-11-24/.${FINAL}.deadbeef.inprogress`]);
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(foreign, twoHoursAgo, twoHoursAgo);
    await recoveringSink(dataDir, path).sink.start!();
    assert.deepEqual(allFiles(out), [`dt=2026-11-24/${FINAL}`]);
  });

  it('files of a sink running in this process are never touched by another instance starting', async (t) => {
    const { out, dataDir, path } = setupDir(t);
    const first = recoveringSink(dataDir, path).sink;
    await first.start!();
    await driven(first).write([{ _id: 'live', timestamp: '2026-11-24T07:00:00Z' }], new AbortController().signal);
    const second = recoveringSink(dataDir, path).sink;
    await second.start!();
    assert.equal(allFiles(out).filter((f) => f.endsWith('.inprogress')).length, 1);
    await driven(first).write([{ _id: 'more', timestamp: '2026-11-24T07:00:01Z' }], new AbortController().signal);
    await first.stop();
    await second.stop();
    assert.deepEqual(
      readEvents(out).map((e) => e._id),
      ['live', 'more'],
    );
  });
});
