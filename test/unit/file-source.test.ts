import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Source } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { fileSource } from '../../src/sources/file.ts';
import { recordingSourceContext, tempDir } from '../helpers/context.ts';
import { openDescriptors, openFilesIn } from '../helpers/proc.ts';

type Recording = ReturnType<typeof recordingSourceContext>;
type TestContext = { after: (fn: () => unknown) => void };

interface Harness {
  dir: string;
  logs: string;
  rec: Recording;
  source: Source;
  /** Acknowledges every batch emitted and not yet acknowledged. */
  ackAll(status?: 'delivered' | 'failed'): void;
  /** Resolves once `n` events were emitted in all; fails after 10 s. */
  waitForEvents(n: number): Promise<void>;
  messages(): string[];
  metric(name: string): Promise<number>;
  checkpoints(): { key: string; offset: number; path: string }[];
  stop(): Promise<void>;
}

/** A file source on `<dir>/logs/*.log` with fast timers, recording what it emits; stopped after the test. */
async function startSource(t: TestContext, options: Record<string, unknown> = {}, dir = tempDir(t)): Promise<Harness> {
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const rec = recordingSourceContext('logs', join(dir, 'data'), 'file');
  const parsed = fileSource.options.parse({
    include: [join(logs, '*.log')],
    poll_interval: '20ms',
    glob_interval: '50ms',
    checkpoint_interval: '20ms',
    rotate_wait: '100ms',
    ...options,
  });
  const source = fileSource.build(parsed, rec.ctx);
  let acked = 0;
  let stopped: Promise<void> | undefined;
  const h: Harness = {
    dir,
    logs,
    rec,
    source,
    ackAll(status = 'delivered') {
      for (; acked < rec.batches.length; acked++) rec.batches[acked]!.options?.onSettled?.(status);
    },
    messages: () => rec.events().map((e) => String(e.message)),
    waitForEvents: (n) =>
      until(
        () => rec.events().length >= n,
        () => `${n} events (have ${rec.events().length})`,
      ),
    async metric(name) {
      const m = rec.pipelineMetrics.registry.getSingleMetric(name);
      const values = (await m?.get())?.values ?? [];
      return values.reduce((s, v) => s + v.value, 0);
    },
    checkpoints() {
      const path = join(dir, 'data', 'file_source', 'logs', 'checkpoints.json');
      return JSON.parse(readFileSync(path, 'utf8')).files;
    },
    stop() {
      stopped ??= (async () => {
        rec.unblock();
        const stopping = source.stop();
        // stop() waits for the batches in flight to settle: acknowledge whatever it still emits.
        let done = false;
        stopping.then(() => {
          done = true;
        });
        const deadline = Date.now() + 20_000;
        while (!done) {
          // A stop that never resolves is a bug: fail with a message instead of hanging the run.
          if (Date.now() > deadline) throw new Error('file source stop() did not resolve within 20 s');
          h.ackAll();
          await new Promise((r) => setTimeout(r, 5));
        }
        await stopping;
      })();
      return stopped;
    },
  };
  t.after(() => h.stop());
  await source.start();
  return h;
}

/** Waits until `check()` holds, polling; fails with `what` after 10 s. */
async function until(check: () => boolean | Promise<boolean>, what: string | (() => string)): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const numbered = (from: number, to: number, prefix = 'line') => {
  let s = '';
  for (let i = from; i <= to; i++) s += `${prefix} ${i}\n`;
  return s;
};

describe('file source (in process)', () => {
  it('stop() that comes while the loop awaits a directory scan resolves (regression: the loop slept forever)', async (t) => {
    // Timers far away, so that nothing but stop() itself can end the loop's sleep.
    const h = await startSource(t, { glob_interval: '1h', poll_interval: '1h', checkpoint_interval: '1h' });
    const internals = h.source as unknown as {
      files: { scan(initial: boolean): Promise<void> };
      requestScan(): void;
    };
    const realScan = internals.files.scan.bind(internals.files);
    let entered!: () => void;
    const inScan = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    internals.files.scan = async (initial) => {
      entered();
      await released;
      return realScan(initial);
    };
    internals.requestScan();
    await inScan;
    const stopping = h.stop(); // the harness fails after 20 s when stop() never resolves
    release();
    await stopping;
    assert.equal(h.rec.events().length, 0);
  });

  it('validates its options: include must name at least one pattern, sizes and durations parse', () => {
    assert.equal(fileSource.options.safeParse({ include: [] }).success, false);
    const o = fileSource.options.parse({ include: ['/var/log/*.log'], max_line_bytes: '1MiB', rotate_wait: '2s' });
    assert.equal(o.max_line_bytes, 1024 * 1024);
    assert.equal(o.rotate_wait, 2000);
    assert.deepEqual(o.fingerprint, { strategy: 'checksum', bytes: 256 });
    assert.equal(o.read_from, 'beginning');
  });

  it('emits each line with file, offset, host, source_type and an id from fingerprint + offset', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'logs'));
    const path = join(dir, 'logs', 'app.log');
    writeFileSync(path, 'first line is long enough to fingerprint\nsecond\r\n\nthird\n');
    const h = await startSource(t, {}, dir);
    await h.waitForEvents(3);
    const events = h.rec.events();
    assert.deepEqual(
      events.map((e) => [e.message, e.offset]),
      [
        ['first line is long enough to fingerprint', 0],
        ['second', 41],
        ['third', 50],
      ],
    );
    const e = events[0]!;
    assert.equal(e.file, path);
    assert.equal(e.source_type, 'file');
    assert.equal(typeof e.host, 'string');
    assert.equal(typeof e.timestamp, 'string');
    const key = String(e._id).split(':')[0];
    assert.deepEqual(
      events.map((x) => x._id),
      [`${key}:0`, `${key}:41`, `${key}:50`],
    );
    assert.equal(h.rec.batches[0]!.options?.bytes, 56);
  });

  it('the checkpoint advances only over delivered batches, contiguously, and is written at stop', async (t) => {
    const h = await startSource(t, { max_read_bytes: 4096 });
    const path = join(h.logs, 'app.log');
    writeFileSync(path, numbered(1, 3000)); // several batches of 4 KiB
    await h.waitForEvents(3000);
    const batches = [...h.rec.batches];
    assert.ok(batches.length >= 4, `${batches.length} batches`);
    // settle out of order: the last ones first, the second one failed
    for (let i = batches.length - 1; i >= 2; i--) batches[i]!.options!.onSettled!('delivered');
    batches[0]!.options!.onSettled!('delivered');
    await until(() => h.checkpoints()[0]?.offset === offsetOf(batches[1]!.events[0]!), 'checkpoint after batch 0');
    batches[1]!.options!.onSettled!('failed');
    // the failure makes the source read batch 1 (and everything after it) again, with the same ids
    await h.waitForEvents(3000 + 3000 - batches[0]!.events.length);
    const again = h.rec.batches.slice(batches.length).flatMap((b) => b.events);
    assert.deepEqual(
      again.slice(0, batches[1]!.events.length).map((e) => e._id),
      batches[1]!.events.map((e) => e._id),
    );
    assert.equal(h.checkpoints()[0]!.offset, offsetOf(batches[1]!.events[0]!), 'a failed batch never advances it');
    assert.equal(await h.metric('fluxo_file_source_rewinds_total'), 1);
    await h.stop();
    const size = readFileSync(path).length;
    assert.equal(h.checkpoints()[0]!.offset, size, 'everything acknowledged by the end');
  });

  it('a restart resumes at the checkpoint: nothing skipped, nothing read twice', async (t) => {
    const dir = tempDir(t);
    const first = await startSource(t, {}, dir);
    const path = join(first.logs, 'app.log');
    writeFileSync(path, numbered(1, 100));
    await first.waitForEvents(100);
    first.ackAll();
    await first.stop();
    appendFileSync(path, numbered(101, 150));
    const second = await startSource(t, {}, dir);
    await second.waitForEvents(50);
    assert.deepEqual(second.messages(), numbered(101, 150).trimEnd().split('\n'));
  });

  it('a file rotated by rename while stopped is finished from its checkpoint; the new file is read too', async (t) => {
    const dir = tempDir(t);
    const first = await startSource(t, {}, dir);
    const path = join(first.logs, 'app.log');
    writeFileSync(path, numbered(1, 100));
    await first.waitForEvents(100);
    first.ackAll();
    await first.stop();
    appendFileSync(path, numbered(101, 130)); // written before the rotation, never read
    renameSync(path, `${path}.1`);
    writeFileSync(path, numbered(131, 150));
    const second = await startSource(t, {}, dir);
    await second.waitForEvents(50);
    const got = second.messages().map((m) => Number(m.slice(5)));
    assert.deepEqual(
      [...got].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => 101 + i),
    );
  });

  it('fingerprint device_and_inode: a file is followed by its inode, across a rename and a restart', async (t) => {
    const dir = tempDir(t);
    const options = { include: [join(dir, 'logs', '*.log*')], fingerprint: { strategy: 'device_and_inode' } };
    const first = await startSource(t, options, dir);
    const path = join(first.logs, 'app.log');
    writeFileSync(path, numbered(1, 10));
    await first.waitForEvents(10);
    first.ackAll();
    await first.stop();
    renameSync(path, `${path}.1`);
    appendFileSync(`${path}.1`, numbered(11, 15));
    const second = await startSource(t, options, dir);
    await second.waitForEvents(5);
    assert.deepEqual(second.messages(), numbered(11, 15).trimEnd().split('\n'));
    assert.equal(String(second.rec.events()[0]!._id).split(':')[0], String(first.rec.events()[0]!._id).split(':')[0]);
  });

  it('backpressure: while an emit waits, the file is not read further', async (t) => {
    const h = await startSource(t, { max_read_bytes: 4096 });
    h.rec.block();
    writeFileSync(join(h.logs, 'big.log'), numbered(1, 20_000));
    await until(() => h.rec.batches.length >= 1, 'first batch');
    await new Promise((r) => setTimeout(r, 200)); // polls and scans run meanwhile; none may read
    assert.equal(h.rec.batches.length, 1);
    h.rec.unblock();
    const unblock = setInterval(() => h.rec.unblock(), 5);
    try {
      await h.waitForEvents(20_000);
    } finally {
      clearInterval(unblock); // here, not in an after hook: a failing hook skips the hooks after it
    }
    assert.equal(h.rec.events().length, 20_000);
  });

  it('read_from: end skips what a file holds at start-up (from the next whole line); new files are read whole', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs', 'old.log'), 'before 1\nbefore 2\nhalf a li');
    const h = await startSource(t, { read_from: 'end' }, dir);
    appendFileSync(join(h.logs, 'old.log'), 'ne\nafter 1\n');
    writeFileSync(join(h.logs, 'new.log'), 'new 1\n');
    await until(() => h.rec.events().length >= 2, 'two lines');
    assert.deepEqual(h.messages().sort(), ['after 1', 'new 1']);
  });

  it('ignore_older_than: an old file is read from its end; lines added later are collected', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'logs'));
    const path = join(dir, 'logs', 'stale.log');
    writeFileSync(path, 'ancient line\n');
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(path, past, past);
    const h = await startSource(t, { ignore_older_than: '10m' }, dir);
    appendFileSync(path, 'fresh line\n');
    await h.waitForEvents(1);
    assert.deepEqual(h.messages(), ['fresh line']);
  });

  it('a partial line is held, then emitted after partial_line_timeout when the file stops growing', async (t) => {
    const h = await startSource(t, { partial_line_timeout: '100ms' });
    writeFileSync(join(h.logs, 'p.log'), 'whole\nno newline yet');
    await h.waitForEvents(2);
    assert.deepEqual(h.messages(), ['whole', 'no newline yet']);
    assert.equal(await h.metric('fluxo_file_source_partial_lines_flushed_total'), 1);
  });

  it('without partial_line_timeout a partial line waits for its newline', async (t) => {
    const h = await startSource(t);
    const path = join(h.logs, 'p.log');
    writeFileSync(path, 'whole\nhalf');
    await h.waitForEvents(1);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(h.messages(), ['whole']);
    appendFileSync(path, ' and the rest\n');
    await h.waitForEvents(2);
    assert.deepEqual(h.messages(), ['whole', 'half and the rest']);
    assert.equal(h.rec.events()[1]!.offset, 6);
  });

  it('multiline: a stack trace is one event; the last one is emitted after the timeout', async (t) => {
    const h = await startSource(t, {
      multiline: {
        start_pattern: '^[^\\s]',
        condition_pattern: '^\\s+at |^Caused by:',
        mode: 'continue_through',
        timeout: '100ms',
      },
    });
    writeFileSync(
      join(h.logs, 'java.log'),
      'INFO ok\nERROR boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\nINFO next\nERROR last\n\tat x.Y.z(Y.java:3)\n',
    );
    await h.waitForEvents(4);
    assert.deepEqual(h.messages(), [
      'INFO ok',
      'ERROR boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)',
      'INFO next',
      'ERROR last\n\tat x.Y.z(Y.java:3)',
    ]);
    assert.deepEqual(
      h.rec.events().map((e) => e.offset),
      [0, 8, 59, 69],
    );
  });

  it('truncation in place: new lines are read from the start, under a new key', async (t) => {
    const h = await startSource(t);
    const path = join(h.logs, 'app.log');
    writeFileSync(path, numbered(1, 50, 'before truncation, line'));
    await h.waitForEvents(50);
    truncateSync(path, 0);
    appendFileSync(path, numbered(1, 3, 'after truncation, line'));
    await h.waitForEvents(53);
    const after = h.rec.events().slice(50);
    assert.deepEqual(
      after.map((e) => [e.message, e.offset]),
      [
        ['after truncation, line 1', 0],
        ['after truncation, line 2', 25],
        ['after truncation, line 3', 50],
      ],
    );
    const keyBefore = String(h.rec.events()[0]!._id).split(':')[0];
    const keyAfter = String(after[0]!._id).split(':')[0];
    assert.notEqual(keyAfter, keyBefore, 'offset 0 of the new content must not reuse an old id');
    assert.equal(await h.metric('fluxo_file_source_truncations_total'), 1);
  });

  it('truncated and rewritten past the old offset between two looks: the changed first bytes tell', async (t) => {
    const h = await startSource(t);
    const path = join(h.logs, 'app.log');
    writeFileSync(path, numbered(1, 10, 'old content'));
    await h.waitForEvents(10);
    // Replace the content in one write with something longer than what was read (no moment of a shorter file).
    writeFileSync(`${path}.tmp`, numbered(1, 40, 'new content'));
    const bytes = readFileSync(`${path}.tmp`);
    const fd = await import('node:fs/promises').then((fs) => fs.open(path, 'r+'));
    await fd.write(bytes, 0, bytes.length, 0);
    await fd.close();
    await h.waitForEvents(50);
    assert.deepEqual(h.messages().slice(10), numbered(1, 40, 'new content').trimEnd().split('\n'));
  });

  it('rename + create: the renamed file is read to its end (even lines written after the rename), then released', async (t) => {
    const s = await startSource(t);
    const path = join(s.logs, 'app.log');
    writeFileSync(path, numbered(1, 100));
    await s.waitForEvents(100);
    renameSync(path, join(s.logs, 'app.log.1')); // out of the glob
    appendFileSync(join(s.logs, 'app.log.1'), numbered(101, 110)); // the writer still had it open
    writeFileSync(path, numbered(111, 120));
    await s.waitForEvents(120);
    const got = s.messages().map((m) => Number(m.slice(5)));
    assert.deepEqual(
      [...got].sort((a, b) => a - b),
      Array.from({ length: 120 }, (_, i) => i + 1),
    );
    await until(async () => (await s.metric('fluxo_file_source_files_released_total')) === 1, 'release');
    assert.equal(await s.metric('fluxo_file_source_rotations_total'), 1);
    assert.equal(openPathsOf(join(s.logs, 'app.log.1')), 0, 'the rotated file is closed');
  });

  it('a file deleted while being read is read to its end through its handle, then released', async (t) => {
    const h = await startSource(t, { max_read_bytes: 4096 });
    h.rec.block();
    const path = join(h.logs, 'doomed.log');
    writeFileSync(path, numbered(1, 5000));
    await until(() => h.rec.batches.length >= 1, 'first batch');
    unlinkSync(path);
    const unblock = setInterval(() => {
      h.ackAll();
      h.rec.unblock();
    }, 5);
    try {
      await h.waitForEvents(5000);
    } finally {
      clearInterval(unblock);
    }
    assert.deepEqual(h.messages(), numbered(1, 5000).trimEnd().split('\n'));
    await until(async () => (await h.metric('fluxo_file_source_files_released_total')) === 1, 'release');
    assert.equal(await h.metric('fluxo_file_source_deletions_total'), 1);
    assert.equal(openPathsOf(path), 0, 'the deleted file is closed');
  });

  it('many files with max_open_files 5: every line, never more than 5 files open', async (t) => {
    const h = await startSource(t, { max_open_files: 5 });
    for (let f = 0; f < 40; f++) writeFileSync(join(h.logs, `f${f}.log`), numbered(1, 20, `file ${f} line`));
    let maxOpen = 0;
    const sample = setInterval(async () => {
      maxOpen = Math.max(maxOpen, await h.metric('fluxo_file_source_open_files'));
    }, 1);
    try {
      await h.waitForEvents(800);
      for (let f = 0; f < 40; f++) appendFileSync(join(h.logs, `f${f}.log`), `file ${f} line 21\n`);
      await h.waitForEvents(840);
    } finally {
      clearInterval(sample);
    }
    assert.equal(new Set(h.messages()).size, 840);
    assert.ok(maxOpen <= 5, `max open ${maxOpen}`);
    assert.ok(openFilesIn(h.logs).length <= 5);
  });

  it('exclude globs; .gz files only when a pattern names them, read decompressed', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs', 'keep.log'), 'kept\n');
    writeFileSync(join(dir, 'logs', 'debug.log'), 'excluded\n');
    writeFileSync(join(dir, 'logs', 'old.log.gz'), gzipSync('not asked for\n'));
    mkdirSync(join(dir, 'archive'));
    writeFileSync(join(dir, 'archive', 'a.log.gz'), gzipSync('zipped 1\nzipped 2\n'));
    const h = await startSource(
      t,
      {
        include: [join(dir, 'logs', '*.log*'), join(dir, 'archive', '*.gz')],
        exclude: [join(dir, 'logs', 'debug.log')],
      },
      dir,
    );
    await h.waitForEvents(3);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(h.messages().sort(), ['kept', 'zipped 1', 'zipped 2']);
  });

  it('an overlong line goes to the dead letter output with its size; the next lines go on', async (t) => {
    const h = await startSource(t, { max_line_bytes: 100 });
    writeFileSync(join(h.logs, 'x.log'), `short\n${'z'.repeat(5000)}\nafter\n`);
    await h.waitForEvents(2);
    assert.deepEqual(h.messages(), ['short', 'after']);
    assert.equal(h.rec.deadLettered.length, 1);
    const dead = h.rec.deadLettered[0]!;
    assert.match(dead.reason, /max_line_bytes/);
    assert.equal(dead.events[0]!._original_bytes, 5000);
    assert.equal(dead.events[0]!.offset, 6);
    assert.equal(await h.metric('fluxo_file_source_lines_too_long_total'), 1);
  });

  it('invalid UTF-8 is kept as replacement characters and counted', async (t) => {
    const h = await startSource(t);
    writeFileSync(join(h.logs, 'bin.log'), Buffer.from([0x61, 0xc3, 0x28, 0x0a])); // a, a lead byte without its follower, (
    await h.waitForEvents(1);
    assert.deepEqual(h.messages(), ['a\ufffd(']);
    assert.equal(await h.metric('fluxo_file_source_invalid_utf8_lines_total'), 1);
  });
});

function offsetOf(e: Event): number {
  return Number(e.offset);
}

/** How many of this process's open file descriptors point at the file `path` (also once it is deleted). */
function openPathsOf(path: string): number {
  return openDescriptors().filter(({ target }) => target === path || target === `${path} (deleted)`).length;
}
