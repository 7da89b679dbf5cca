import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Event } from '../../src/core/event.ts';
import { stdinSource, stdinSourceFrom } from '../../src/sources/stdin.ts';
import { recordingSourceContext } from '../helpers/context.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNNER = fileURLToPath(new URL('./fixtures/source-stdin-runner.ts', import.meta.url));

type RunnerMessage =
  | { type: 'batch'; events: Event[]; bytes: number }
  | { type: 'dead'; events: Event[]; reason: string }
  | { type: 'finished' };

/** The stdin source in a child process whose stdin is a real pipe from this test. */
function runner(t: TestContext, env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', RUNNER], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'inherit', 'inherit', 'ipc'],
  });
  t.after(() => child.kill());
  const batches: Event[][] = [];
  const dead: { events: Event[]; reason: string }[] = [];
  let onBatch = () => {};
  const finished = new Promise<void>((resolve) => {
    child.on('message', (m: RunnerMessage) => {
      if (m.type === 'batch') {
        batches.push(m.events);
        onBatch();
      } else if (m.type === 'dead') dead.push(m);
      else resolve();
    });
  });
  const exited = once(child, 'exit');
  const firstBatch = new Promise<void>((resolve) => {
    onBatch = resolve;
  });
  return { child, stdin: child.stdin!, batches, dead, finished, exited, firstBatch };
}

function setup(t: TestContext, maxLineBytes = 102400) {
  const rec = recordingSourceContext('stdin', '/nonexistent', 'stdin');
  const stream = new PassThrough();
  const source = stdinSourceFrom(stream, stdinSource.options.parse({ max_line_bytes: maxLineBytes }), rec.ctx);
  t.after(async () => {
    rec.unblock();
    await source.stop();
  });
  return { rec, stream, source };
}

describe('stdin source through a real pipe', { timeout: 60_000 }, () => {
  it('emits every line, completes the last one at EOF and finishes', async (t) => {
    const r = runner(t);
    r.stdin.write('alpha\nbeta\r\n');
    r.stdin.end('gamma without newline');
    await r.finished;
    const events = r.batches.flat();
    assert.deepEqual(
      events.map((e) => e.message),
      ['alpha', 'beta', 'gamma without newline'],
    );
    for (const e of events) {
      assert.deepEqual(Object.keys(e), ['message', 'timestamp', 'host', 'source_type', '_id']);
      assert.equal(e.host, hostname());
      assert.equal(e.source_type, 'stdin');
    }
    const [code] = await r.exited;
    assert.equal(code, 0, 'the runner exits once the source finished');
  });

  it('stops reading while an emit is pending, so the writer of the pipe is held back', async (t) => {
    const r = runner(t, { SOURCE_STDIN_BLOCK: '1' });
    let sent = 0;
    const chunk = () => {
      let text = '';
      for (let i = 0; i < 500; i++) text += `line ${String(sent++).padStart(9, '0')} ${'-'.repeat(50)}\n`;
      return text;
    };
    r.stdin.write(chunk());
    await r.firstBatch;
    // The child reads no more: the pipe (64 KiB) and its stream buffer fill, then our write queue grows.
    let refused = 0;
    while (r.stdin.writableLength < 2 * 1024 * 1024) {
      if (!r.stdin.write(chunk())) refused++;
      await immediate();
      assert.ok(sent < 2_000_000, 'the child kept reading while blocked');
    }
    assert.ok(refused > 0);
    assert.equal(r.batches.length, 1, 'one batch while blocked');
    r.child.send('unblock');
    r.stdin.end();
    await r.finished;
    const numbers = r.batches.flat().map((e) => Number((e.message as string).slice(5, 14)));
    assert.deepEqual(
      numbers,
      Array.from({ length: sent }, (_, i) => i),
    );
  });

  it('dead-letters an overlong line and goes on', async (t) => {
    const r = runner(t, { SOURCE_STDIN_MAX_LINE_BYTES: '64' });
    r.stdin.end(`short\n${'L'.repeat(300)}\nshort again\n`);
    await r.finished;
    assert.deepEqual(
      r.batches.flat().map((e) => e.message),
      ['short', 'short again'],
    );
    assert.equal(r.dead.length, 1);
    assert.equal(r.dead[0]!.reason, 'line longer than max_line_bytes (64 bytes)');
    assert.equal(r.dead[0]!.events[0]!._original_bytes, 300);
    assert.equal(r.dead[0]!.events[0]!._truncated, true);
  });
});

describe('stdin source on any stream', { timeout: 30_000 }, () => {
  it('has a default and a description on its option', () => {
    assert.deepEqual(stdinSource.options.parse({}), { max_line_bytes: 100 * 1024 });
    assert.ok(stdinSource.options.shape.max_line_bytes.description);
  });

  it('emits one batch per chunk with the wire bytes, and finishes at EOF', async (t) => {
    const { rec, stream, source } = setup(t);
    await source.start();
    stream.write('a\nb\nc\n');
    await rec.waitForEvents(3);
    stream.write('d\ne');
    stream.end('nd\n\nlast');
    await source.finished;
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['a', 'b', 'c', 'd', 'end', 'last'],
    );
    assert.equal(rec.batches[0]!.events.length, 3);
    assert.equal(
      rec.batches.reduce((s, b) => s + (b.options?.bytes ?? 0), 0),
      'a\nb\nc\nd\nend\n\nlast'.length,
    );
    // one timestamp per batch
    assert.equal(new Set(rec.batches[0]!.events.map((e) => e.timestamp)).size, 1);
  });

  it('pauses the stream while an emit is pending and resumes after', async (t) => {
    const { rec, stream, source } = setup(t);
    rec.block();
    await source.start();
    stream.write('one\n');
    await rec.waitForEvents(1);
    assert.equal(stream.isPaused(), true);
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) refused = !stream.write(`${'x'.repeat(1000)}\n`);
    assert.ok(refused, 'the stream buffer fills while paused');
    assert.equal(rec.batches.length, 1);
    rec.unblock();
    stream.end();
    await source.finished;
    assert.ok(rec.events().length > 1);
  });

  it('finished waits for the last emit to settle', async (t) => {
    const { rec, stream, source } = setup(t);
    rec.block();
    await source.start();
    let finished = false;
    source.finished.then(() => {
      finished = true;
    });
    stream.end('only line');
    await rec.waitForEvents(1);
    for (let i = 0; i < 5; i++) await immediate();
    assert.equal(finished, false);
    rec.unblock();
    await source.finished;
  });

  it('stop() before EOF drops the unterminated line and resolves finished', async (t) => {
    const { rec, stream, source } = setup(t);
    await source.start();
    stream.write('kept\nhalf');
    await rec.waitForEvents(1);
    await source.stop();
    await source.finished;
    stream.write(' more\n');
    await immediate();
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['kept'],
    );
    const m = rec.pipelineMetrics.registry.getSingleMetric('fluxo_stdin_partial_lines_dropped_total');
    assert.equal((await m!.get()).values[0]?.value, 1);
  });
});
