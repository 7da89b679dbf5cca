import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { constants, gunzipSync } from 'node:zlib';
import { PermanentError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { type FileClosed, type FileSink, fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { openDescriptors } from '../helpers/proc.ts';
import { driven } from '../helpers/sink-driver.ts';

const signal = new AbortController().signal;
const TS = '2026-11-24T07:45:01.123Z';

function setup(t: { after: (fn: () => void | Promise<void>) => void }, options: Record<string, unknown>) {
  const dir = tempDir(t);
  const out = join(dir, 'out');
  const ctx = componentContext('master', join(dir, 'data'), 'sink', 'file');
  const parsed = fileSink.options.parse({ ...options, path: join(out, String(options.path)) });
  const sink = fileSink.build(parsed, ctx) as FileSink;
  t.after(() => sink.stop().catch(() => {}));
  return { out, sink, ctx };
}

function ev(i: number, extra: Event = {}): Event {
  return { _id: `e${i}`, message: `line ${i}`, timestamp: TS, ...extra };
}
const range = (from: number, to: number, extra: Event = {}) =>
  Array.from({ length: to - from + 1 }, (_, k) => ev(from + k, extra));

/** Every file under `root`, relative, sorted; hidden ones included. */
function files(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root, { recursive: true }) as string[];
  } catch {
    return [];
  }
  return names.filter((n) => statSync(join(root, n)).isFile()).sort();
}
const isHidden = (rel: string) => rel.split('/').pop()!.startsWith('.');
const visible = (root: string) => files(root).filter((f) => !isHidden(f));
const hidden = (root: string) => files(root).filter(isHidden);

function lines(path: string, finishFlush = constants.Z_FINISH): string[] {
  const raw = readFileSync(path);
  const text = (raw[0] === 0x1f ? gunzipSync(raw, { finishFlush }) : raw).toString('utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${path} ends in a torn line`);
  return text === '' ? [] : text.slice(0, -1).split('\n');
}
const ids = (root: string, names = visible(root)) =>
  names.flatMap((f) => lines(join(root, f)).map((l) => String(JSON.parse(l)._id)));

function sameIds(actual: string[], expected: Event[]) {
  assert.deepEqual([...actual].sort(), expected.map((e) => String(e._id)).sort());
}

/** Collects `file-closed` events; atLeast(n) resolves once n files were closed. */
function watchCloses(sink: FileSink) {
  const closed: FileClosed[] = [];
  let wake: () => void = () => {};
  sink.on('file-closed', (c) => {
    closed.push(c);
    wake();
  });
  return {
    closed,
    async atLeast(n: number) {
      // The sink's timers are unref'd (they never keep a process alive), so hold the loop open while waiting.
      const keepAlive = setInterval(() => {}, 60_000);
      try {
        while (closed.length < n) await new Promise<void>((r) => (wake = r));
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}

/** Closes the descriptor of this process's open temp file whose path contains `fragment`: a real EBADF. */
function closeFdUnderneath(fragment: string): void {
  const open = openDescriptors().find(({ target }) => target.endsWith('.inprogress') && target.includes(fragment));
  if (open === undefined) throw new Error(`no open in-progress file matching ${fragment}`);
  closeSync(open.fd);
}

const FINAL_NAME = /^part-\d{8}T\d{6}Z-[0-9a-f]{8}\.ndjson(\.gz)?$/;
const TEMP_NAME = /^\.part-\d{8}T\d{6}Z-[0-9a-f]{8}\.ndjson(\.gz)?\.[0-9a-f]{8}\.inprogress$/;

describe('file sink: content', () => {
  it('json: one JSON object per line, in write order', async (t) => {
    const { out, sink } = setup(t, { path: 'part.ndjson' });
    const batch1 = range(1, 3);
    const batch2 = [ev(4, { nested: { a: [1, 'x'] } }), ev(5, { message: 'multi\nline "quoted"' })];
    await driven(sink).write(batch1, signal);
    await driven(sink).write(batch2, signal);
    await sink.stop();
    const names = visible(out);
    assert.equal(names.length, 1);
    assert.match(names[0]!, FINAL_NAME);
    assert.deepEqual(
      lines(join(out, names[0]!)).map((l) => JSON.parse(l)),
      [...batch1, ...batch2],
    );
  });

  it('json with lines a disk buffer encoded: written as they are, and each partition gets its own', async (t) => {
    // Keys in another order than the events': the file shows which bytes were written.
    const encoded = (events: Event[]) =>
      events.map((e) => `${JSON.stringify({ timestamp: e.timestamp, message: e.message, _id: e._id })}\n`);
    const one = setup(t, { path: 'part.ndjson' });
    const batch = range(1, 3);
    await driven(one.sink).write(batch, signal, Buffer.from(encoded(batch).join('')));
    await one.sink.stop();
    assert.equal(readFileSync(join(one.out, visible(one.out)[0]!), 'utf8'), encoded(batch).join(''));

    const split = setup(t, { path: 'hour=%H/part.ndjson' });
    const mixed = [
      ev(1),
      ev(2, { timestamp: '2026-11-24T08:00:00Z' }),
      ev(3),
      ev(4, { timestamp: '2026-11-24T08:30:00Z' }),
    ];
    const text = encoded(mixed);
    await driven(split.sink).write(mixed, signal, Buffer.from(text.join('')));
    // Lines that do not match the events (one missing) are not trusted: the events are encoded here instead.
    await driven(split.sink).write([ev(5)], signal, Buffer.from(''));
    await split.sink.stop();
    const [h07, h08] = visible(split.out);
    assert.equal(
      readFileSync(join(split.out, h07!), 'utf8'),
      [text[0], text[2], `${JSON.stringify(ev(5))}\n`].join(''),
    );
    assert.equal(readFileSync(join(split.out, h08!), 'utf8'), text[1]! + text[3]!);

    const plain = setup(t, { path: 'part.log', encoding: 'text' });
    await driven(plain.sink).write([ev(1)], signal, Buffer.from(encoded([ev(1)]).join('')));
    await plain.sink.stop();
    assert.deepEqual(lines(join(plain.out, visible(plain.out)[0]!)), ['line 1']);
  });

  it('text: the message field per line', async (t) => {
    const { out, sink } = setup(t, { path: 'part.log', encoding: 'text' });
    await driven(sink).write([ev(1), { message: 'plain text' }, { message: 42 }, { no_message: true }], signal);
    await sink.stop();
    assert.deepEqual(lines(join(out, visible(out)[0]!)), ['line 1', 'plain text', '42', '']);
  });

  for (const [name, path, compression, gzip] of [
    ['auto on .gz', 'part.ndjson.gz', 'auto', true],
    ['gzip on a .ndjson path', 'part.ndjson', 'gzip', true],
    ['none on a .gz path', 'part.ndjson.gz', 'none', false],
    ['auto on .ndjson', 'part.ndjson', 'auto', false],
  ] as const) {
    it(`compression ${name}: ${gzip ? 'gzip' : 'plain'}`, async (t) => {
      const { out, sink } = setup(t, { path, compression });
      const batches = [range(1, 100), range(101, 150), range(151, 151)];
      for (const b of batches) await driven(sink).write(b, signal);
      await sink.stop();
      const [name] = visible(out);
      const raw = readFileSync(join(out, name!));
      assert.equal(raw[0] === 0x1f && raw[1] === 0x8b, gzip);
      const text = (gzip ? gunzipSync(raw) : raw).toString();
      assert.deepEqual(
        text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l)),
        batches.flat(),
      );
    });
  }
});

describe('file sink: partitions and visibility', () => {
  it('partitions by the event timestamp (UTC), ISO and epoch ms alike', async (t) => {
    const { out, sink } = setup(t, { path: 'dt=%Y-%m-%d/hour=%H/part.ndjson' });
    const h7 = [ev(1), ev(2, { timestamp: Date.parse('2026-11-24T07:59:59.999Z') })];
    const h8 = [ev(3, { timestamp: '2026-11-24T08:00:00Z' })];
    const d25 = [ev(4, { timestamp: '2026-11-25T00:30:00+01:00' }), ev(5, { timestamp: '2026-11-25T23:00:00Z' })];
    await driven(sink).write([h7[0]!, h8[0]!, d25[0]!, h7[1]!, d25[1]!], signal);
    await sink.stop();
    const byDir = new Map<string, string[]>();
    for (const f of visible(out)) byDir.set(f.slice(0, f.lastIndexOf('/')), ids(out, [f]));
    assert.deepEqual([...byDir.keys()].sort(), [
      'dt=2026-11-24/hour=07',
      'dt=2026-11-24/hour=08',
      'dt=2026-11-24/hour=23',
      'dt=2026-11-25/hour=23',
    ]);
    assert.deepEqual(byDir.get('dt=2026-11-24/hour=07'), ['e1', 'e2']);
    assert.deepEqual(byDir.get('dt=2026-11-24/hour=08'), ['e3']);
    assert.deepEqual(byDir.get('dt=2026-11-24/hour=23'), ['e4']);
    assert.deepEqual(byDir.get('dt=2026-11-25/hour=23'), ['e5']);
  });

  for (const path of ['part.ndjson', 'part.ndjson.gz']) {
    it(`${path}: acknowledged lines are in a hidden temp file, no final file before close, none hidden after stop`, async (t) => {
      const { out, sink } = setup(t, { path });
      await driven(sink).write(range(1, 10), signal);
      await driven(sink).write(range(11, 20), signal);
      assert.deepEqual(visible(out), []);
      const temps = hidden(out);
      assert.equal(temps.length, 1);
      assert.match(temps[0]!, TEMP_NAME);
      // Every acknowledged line is decodable from the temp file already (gzip: flushed, not yet ended).
      assert.deepEqual(
        lines(join(out, temps[0]!), constants.Z_SYNC_FLUSH).map((l) => JSON.parse(l)._id),
        range(1, 20).map((e) => e._id),
      );
      await sink.stop();
      assert.deepEqual(hidden(out), []);
      assert.equal(visible(out).length, 1);
      assert.match(visible(out)[0]!, FINAL_NAME);
      // the final name keeps the random part of the temp name
      assert.equal(
        temps[0]!.slice(
          1,
          temps[0]!.indexOf(path.endsWith('.gz') ? '.gz.' : '.ndjson.') + (path.endsWith('.gz') ? 3 : 7),
        ),
        visible(out)[0],
      );
    });
  }
});

describe('file sink: rolling', () => {
  for (const path of ['part.ndjson', 'part.ndjson.gz']) {
    it(`${path}: by max_file_size, measured on disk`, async (t) => {
      const { out, sink, ctx } = setup(t, { path, max_file_size: 2000, idle_timeout: 0, max_file_age: 0 });
      const closes = watchCloses(sink);
      // random payloads so gzip cannot shrink the files below the limit too much
      const batches = Array.from({ length: 12 }, (_, b) =>
        range(b * 10 + 1, b * 10 + 10).map((e) => ({ ...e, pad: randomBytes(100).toString('hex') })),
      );
      for (const b of batches) await driven(sink).write(b, signal);
      await closes.atLeast(2);
      for (const c of closes.closed) {
        assert.equal(c.reason, 'max_file_size');
        assert.ok(statSync(c.path).size >= 2000, `${c.path} closed below the limit`);
      }
      await sink.stop();
      const names = visible(out);
      assert.ok(names.length >= 3, `${names.length} files`);
      const all = ids(out);
      assert.equal(all.length, 120);
      sameIds(all, batches.flat());
      const metrics = await ctx.pipelineMetrics.registry.getSingleMetricAsString('fluxo_file_sink_files_closed_total');
      assert.match(metrics, new RegExp(`component_id="master"[^}]*} ${names.length}$`, 'm'));
    });
  }

  it('by idle_timeout: an idle file is closed and visible while the sink runs; later events go to a new file', async (t) => {
    const { out, sink } = setup(t, { path: 'part.ndjson', idle_timeout: 30, max_file_age: 0 });
    const closes = watchCloses(sink);
    await driven(sink).write(range(1, 5), signal);
    await closes.atLeast(1);
    assert.equal(closes.closed[0]!.reason, 'idle_timeout');
    assert.deepEqual(hidden(out), []);
    assert.deepEqual(ids(out), ['e1', 'e2', 'e3', 'e4', 'e5']);
    await driven(sink).write(range(6, 7), signal);
    await sink.stop();
    assert.equal(visible(out).length, 2);
    sameIds(ids(out), range(1, 7));
  });

  it('by max_file_age, while writes keep coming, without losing or repeating a line', async (t) => {
    const { out, sink } = setup(t, { path: 'part.ndjson.gz', max_file_age: 50, idle_timeout: 0 });
    const closes = watchCloses(sink);
    const written: Event[] = [];
    for (let b = 0; closes.closed.length === 0; b++) {
      assert.ok(b < 100_000, 'no file was closed by age');
      const batch = range(b * 5 + 1, b * 5 + 5);
      await driven(sink).write(batch, signal);
      written.push(...batch);
    }
    assert.equal(closes.closed[0]!.reason, 'max_file_age');
    await sink.stop();
    assert.ok(visible(out).length >= 2);
    const all = ids(out);
    assert.equal(all.length, written.length);
    sameIds(all, written);
  });

  it('max_open_files: opening one more closes the least recently written', async (t) => {
    const { out, sink } = setup(t, {
      path: '{{ app }}/part.ndjson',
      max_open_files: 2,
      idle_timeout: 0,
      max_file_age: 0,
    });
    const closes = watchCloses(sink);
    await driven(sink).write([ev(1, { app: 'a' })], signal);
    await driven(sink).write([ev(2, { app: 'b' })], signal);
    await driven(sink).write([ev(3, { app: 'a' })], signal); // a is now the most recent
    await driven(sink).write([ev(4, { app: 'c' })], signal);
    await closes.atLeast(1);
    assert.equal(closes.closed[0]!.reason, 'max_open_files');
    assert.match(relative(out, closes.closed[0]!.path), /^b\//);
    assert.deepEqual(
      hidden(out)
        .map((f) => f.split('/')[0])
        .sort(),
      ['a', 'c'],
    );
    // one batch over more partitions than the limit: all written, never more than 2 open afterwards
    await driven(sink).write(
      ['d', 'e', 'f', 'g', 'a'].map((app, i) => ev(10 + i, { app })),
      signal,
    );
    assert.ok(hidden(out).length <= 2, `${hidden(out).length} open files`);
    await sink.stop();
    sameIds(
      ids(out),
      [1, 2, 3, 4, 10, 11, 12, 13, 14].map((i) => ev(i)),
    );
  });

  it('concurrent writes with a tiny size limit and one open file: every line once, none torn', async (t) => {
    const { out, sink } = setup(t, { path: '{{ app }}/part.ndjson.gz', max_file_size: 300, max_open_files: 1 });
    const batches = Array.from({ length: 40 }, (_, b) => range(b * 3 + 1, b * 3 + 3, { app: `app${b % 3}` }));
    await Promise.all(batches.map((b) => driven(sink).write(b, signal)));
    await sink.stop();
    assert.deepEqual(hidden(out), []);
    const all = ids(out);
    assert.equal(all.length, 120);
    sameIds(all, batches.flat());
  });
});

describe('file sink: rejections and retries', () => {
  it('events missing a path field are rejected with PermanentError; the rest are written', async (t) => {
    const { out, sink } = setup(t, { path: 'app={{ app }}/part.ndjson' });
    const good1 = ev(1, { app: 'api' });
    const bad1 = ev(2);
    const good2 = ev(3, { app: 'web' });
    const bad2 = ev(4, { app: null });
    const error = await driven(sink)
      .write([good1, bad1, good2, bad2], signal)
      .then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
    assert.ok(error instanceof PermanentError);
    assert.equal(error.events!.length, 2);
    assert.equal(error.events![0], bad1);
    assert.equal(error.events![1], bad2);
    assert.match(error.reason, /2 event\(s\) lack path field \{\{ app \}\}/);
    await sink.stop();
    assert.deepEqual(
      ids(
        out,
        visible(out).filter((f) => f.startsWith('app=api/')),
      ),
      ['e1'],
    );
    assert.deepEqual(
      ids(
        out,
        visible(out).filter((f) => f.startsWith('app=web/')),
      ),
      ['e3'],
    );
    assert.equal(visible(out).length, 2);
  });

  it('an event JSON cannot encode (BigInt) is rejected alone', async (t) => {
    const { out, sink } = setup(t, { path: 'part.ndjson' });
    const bad = ev(2, { big: 10n });
    await assert.rejects(driven(sink).write([ev(1), bad, ev(3)], signal), (e: unknown) => {
      return e instanceof PermanentError && e.events?.length === 1 && e.events[0] === bad;
    });
    await sink.stop();
    assert.deepEqual(ids(out), ['e1', 'e3']);
  });

  for (const path of ['part.ndjson', 'part.ndjson.gz']) {
    it(`${path}: a write that fails (descriptor closed underneath: EBADF) and is retried leaves each line once`, async (t) => {
      const { out, sink } = setup(t, { path });
      await driven(sink).write(range(1, 50), signal);
      closeFdUnderneath('.part-');
      const b = range(51, 100);
      await assert.rejects(driven(sink).write(b, signal), { code: 'EBADF' });
      await driven(sink).write(b, signal); // the runner's retry: same array
      await driven(sink).write(range(101, 120), signal);
      await sink.stop();
      const all = ids(out);
      assert.deepEqual(
        all,
        range(1, 120).map((e) => e._id),
      );
    });
  }

  it('a retry after one partition failed does not write the other partitions again', async (t) => {
    const { out, sink } = setup(t, { path: '{{ app }}/part.ndjson.gz' });
    await driven(sink).write([ev(1, { app: 'x' }), ev(2, { app: 'y' })], signal);
    closeFdUnderneath('/y/.part-');
    const batch = [ev(3, { app: 'x' }), ev(4, { app: 'y' }), ev(5, { app: 'x' })];
    await assert.rejects(driven(sink).write(batch, signal), { code: 'EBADF' });
    await driven(sink).write(batch, signal);
    await sink.stop();
    assert.deepEqual(
      ids(
        out,
        visible(out).filter((f) => f.startsWith('x/')),
      ),
      ['e1', 'e3', 'e5'],
    );
    assert.deepEqual(
      ids(
        out,
        visible(out).filter((f) => f.startsWith('y/')),
      ),
      ['e2', 'e4'],
    );
  });

  it('write after stop is refused', async (t) => {
    const { sink } = setup(t, { path: 'part.ndjson' });
    await sink.stop();
    await assert.rejects(driven(sink).write([ev(1)], signal), { code: 'FLUXO_SINK_STOPPED' });
  });
});

describe('file sink: definition', () => {
  it('defaults, sizes and durations with units, the endpoint', () => {
    const o = fileSink.options.parse({ path: 'data/%Y/part.ndjson.gz', max_file_size: '1MiB', idle_timeout: '2s' });
    assert.deepEqual(o, {
      path: 'data/%Y/part.ndjson.gz',
      encoding: 'ndjson',
      compression: 'auto',
      timezone: 'utc',
      max_file_size: 1024 * 1024,
      max_file_age: 300_000,
      idle_timeout: 2000,
      max_open_files: 64,
      sync: true,
    });
    assert.equal(fileSink.options.parse({ path: 'x.log' }).max_file_size, 128 * 1024 * 1024);
    assert.equal(fileSink.describeEndpoint!(o), 'data/%Y/part.ndjson.gz');
    for (const [key, schema] of Object.entries(fileSink.options.shape)) {
      assert.ok(schema.description, `option ${key} has no description`);
    }
  });

  it('an invalid path template fails validation with its reason', () => {
    const result = fileSink.options.safeParse({ path: 'data/%Q/part.log' });
    assert.equal(result.success, false);
    assert.match(result.error!.issues[0]!.message, /unknown strftime field "%Q"/);
  });

  it('start() on a directory that does not exist yet is a no-op', async (t) => {
    const { out, sink } = setup(t, { path: 'dt=%Y/part.ndjson' });
    await sink.start();
    assert.deepEqual(files(out), []);
  });
});
