import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AckWindow } from '../../src/sources/file/ack-window.ts';
import { type CheckpointRecord, FileCheckpointStore } from '../../src/sources/file/checkpoints.ts';
import {
  type FileFacts,
  type FingerprintOptions,
  hashHead,
  identify,
  newRecord,
  readHead,
} from '../../src/sources/file/fingerprint.ts';
import { tempDir, testLogger } from '../helpers/context.ts';

describe('file source: acknowledgement window', () => {
  it('the checkpoint moves to the end of the longest delivered prefix, whatever the settle order', () => {
    const w = new AckWindow(0);
    const a = w.open(0, 10);
    const b = w.open(10, 25);
    const c = w.open(25, 40);
    assert.equal(w.settle(c, 'delivered'), false);
    assert.equal(w.committed, 0);
    assert.equal(w.settle(a, 'delivered'), true);
    assert.equal(w.committed, 10);
    assert.equal(w.settle(b, 'delivered'), true);
    assert.equal(w.committed, 40, 'b closed the gap up to c');
    assert.equal(w.inFlight, 0);
  });

  it('a failed batch never moves the checkpoint, not even when later ones are delivered', () => {
    const w = new AckWindow(100);
    const a = w.open(100, 110);
    const b = w.open(110, 120);
    const c = w.open(120, 130);
    w.settle(a, 'delivered');
    w.settle(b, 'failed');
    w.settle(c, 'delivered');
    assert.equal(w.committed, 110);
    assert.equal(w.failed, true);
  });

  it('rewind returns the failed batch start and abandons it and every later batch', () => {
    const w = new AckWindow(0);
    const a = w.open(0, 10);
    const b = w.open(10, 20);
    const c = w.open(20, 30);
    w.settle(b, 'failed');
    assert.deepEqual(w.rewind(), { from: 10, abandonedPending: 1 }); // c was pending
    assert.equal(w.failed, false);
    assert.equal(w.settle(c, 'delivered'), false, 'abandoned: its outcome no longer counts');
    const b2 = w.open(10, 20);
    w.settle(b2, 'delivered');
    assert.equal(w.committed, 0, 'a still pending');
    w.settle(a, 'delivered');
    assert.equal(w.committed, 20);
    assert.equal(w.rewind(), undefined);
  });

  it('settling twice changes nothing', () => {
    const w = new AckWindow(0);
    const a = w.open(0, 5);
    assert.equal(w.settle(a, 'delivered'), true);
    assert.equal(w.settle(a, 'failed'), false);
    assert.equal(w.committed, 5);
    assert.equal(w.failed, false);
  });

  it('any settle order with failures: committed is always the end of the delivered prefix (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (delivered, seed) => {
          const w = new AckWindow(0);
          const entries = delivered.map((_, i) => w.open(i * 10, i * 10 + 10));
          const order = entries.map((_, i) => i);
          let s = seed;
          for (let i = order.length - 1; i > 0; i--) {
            s = (s * 1103515245 + 12345) & 0x7fffffff;
            const j = s % (i + 1);
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
          for (const i of order) w.settle(entries[i]!, delivered[i] ? 'delivered' : 'failed');
          const firstFailed = delivered.indexOf(false);
          assert.equal(w.committed, (firstFailed < 0 ? delivered.length : firstFailed) * 10);
        },
      ),
    );
  });

  it('keeps memory flat over many batches', () => {
    const w = new AckWindow(0);
    for (let i = 0; i < 100_000; i++) w.settle(w.open(i, i + 1), 'delivered');
    assert.equal(w.committed, 100_000);
    assert.ok((w as unknown as { entries: unknown[] }).entries.length < 200);
  });
});

const FP: FingerprintOptions = { strategy: 'checksum', bytes: 16 };

function store(dir: string, bytes = FP.bytes) {
  return new FileCheckpointStore(join(dir, 'file_source', 'logs'), bytes, testLogger());
}

const facts = (dev: number, ino: number, size: number, birth = 0): FileFacts => ({ dev, ino, size, birth });
const notInUse = () => false;

describe('file source: checkpoint store', () => {
  it('saves atomically and loads the same records back', async (t) => {
    const dir = tempDir(t);
    const a = store(dir);
    const r = newRecord(a, facts(1, 2, 100), Buffer.from('0123456789abcdefXYZ'), '/var/log/a.log', 0, FP, 1000);
    r.offset = 42;
    a.markDirty();
    await a.save();
    assert.equal(a.isDirty, false);
    const names = readdirSync(join(dir, 'file_source', 'logs'));
    assert.deepEqual(names, ['checkpoints.json'], 'no temp file left');
    const b = store(dir);
    await b.load();
    const loaded = b.get(r.key)!;
    assert.deepEqual({ ...loaded }, { ...r });
    assert.equal(r.key, hashHead(Buffer.from('0123456789abcdef')), 'a long file is keyed by its checksum');
  });

  it('save() while a write runs is folded into one more write; nothing is lost', async (t) => {
    const dir = tempDir(t);
    const s = store(dir);
    const r = newRecord(s, facts(1, 2, 100), Buffer.from('0123456789abcdef'), '/a', 0, FP, 1);
    const first = s.save();
    r.offset = 7;
    s.markDirty();
    const second = s.save();
    await Promise.all([first, second]);
    const text = JSON.parse(readFileSync(s.path, 'utf8'));
    assert.equal(text.files[0].offset, 7);
    assert.equal(s.writes, 2);
  });

  it('an unreadable checkpoint file is kept aside, reported, and the store starts empty', async (t) => {
    const dir = tempDir(t);
    const s = store(dir);
    newRecord(s, facts(1, 2, 100), Buffer.from('0123456789abcdef'), '/a', 0, FP, 1);
    await s.save();
    writeFileSync(s.path, '{"version":1,"files":[{"key":');
    const again = store(dir);
    await again.load();
    assert.equal(again.size, 0);
    assert.equal(existsSync(s.path), false);
    assert.ok(readdirSync(join(dir, 'file_source', 'logs')).some((n) => n.startsWith('checkpoints.json.unreadable-')));
  });

  it('a missing checkpoint file is an empty store', async (t) => {
    const s = store(tempDir(t));
    await s.load();
    assert.equal(s.size, 0);
  });
});

describe('file source: file identity', () => {
  const head = Buffer.from('2026-11-24 first line of the log\n');

  it('a renamed or moved file is known by its first bytes', (t) => {
    const s = store(tempDir(t));
    const r = newRecord(s, facts(1, 10, 100), head, '/a.log', 0, FP, 1);
    assert.deepEqual(identify(s, facts(1, 10, 200), head, FP, notInUse), { kind: 'known', record: r });
    assert.deepEqual(identify(s, facts(2, 99, 200), head, FP, notInUse), { kind: 'known', record: r }, 'other device');
  });

  it('a reused inode with other content is a new file', (t) => {
    const s = store(tempDir(t));
    newRecord(s, facts(1, 10, 100), head, '/a.log', 0, FP, 1);
    const other = Buffer.from('something else entirely, longer than 16');
    assert.deepEqual(identify(s, facts(1, 10, 100), other, FP, notInUse), { kind: 'new' });
  });

  it('a file shorter than the fingerprint is known by inode + its first bytes, also after it grew', (t) => {
    const s = store(tempDir(t));
    const short = Buffer.from('hi\n');
    const r = newRecord(s, facts(1, 10, 3), short, '/a.log', 3, FP, 1);
    assert.notEqual(r.key, hashHead(short), 'a short file gets a random key, not a checksum others could share');
    assert.deepEqual(identify(s, facts(1, 10, 3), short, FP, notInUse), { kind: 'known', record: r });
    const grown = Buffer.from('hi\nand more lines now\n');
    assert.deepEqual(identify(s, facts(1, 10, grown.length), grown, FP, notInUse), { kind: 'known', record: r });
    assert.deepEqual(identify(s, facts(1, 11, 3), short, FP, notInUse), { kind: 'new' }, 'other inode');
    assert.deepEqual(identify(s, facts(1, 10, 3), Buffer.from('ho\n'), FP, notInUse), { kind: 'new' }, 'other bytes');
  });

  it('a reused inode is told apart by its birth time when the file system reports one', (t) => {
    const s = store(tempDir(t));
    const short = Buffer.from('x\n');
    newRecord(s, facts(1, 10, 2, 5000), short, '/a.log', 2, FP, 1);
    assert.deepEqual(identify(s, facts(1, 10, 2, 6000), short, FP, notInUse), { kind: 'new' });
  });

  it('the same first bytes as a file being read now, under another inode: a copy', (t) => {
    const s = store(tempDir(t));
    const r = newRecord(s, facts(1, 10, 100), head, '/a.log', 0, FP, 1);
    assert.deepEqual(
      identify(s, facts(1, 11, 100), head, FP, (x) => x === r),
      { kind: 'copy', of: r },
    );
  });

  it('two files with the same first bytes get distinct keys', (t) => {
    const s = store(tempDir(t));
    const a = newRecord(s, facts(1, 10, 100), head, '/a.log', 0, FP, 1);
    const b = newRecord(s, facts(1, 11, 100), head, '/b.log', 0, FP, 1);
    assert.notEqual(a.key, b.key);
  });

  it('device_and_inode: the inode decides, whatever the content', (t) => {
    const s = store(tempDir(t));
    const opts: FingerprintOptions = { strategy: 'device_and_inode', bytes: 16 };
    const r = newRecord(s, facts(1, 10, 100), head, '/a.log', 0, opts, 1);
    assert.deepEqual(identify(s, facts(1, 10, 5), Buffer.from('other'), opts, notInUse), { kind: 'known', record: r });
    assert.deepEqual(identify(s, facts(1, 12, 100), head, opts, notInUse), { kind: 'new' });
  });

  it('readHead reads up to the length, fewer bytes from a shorter file', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'f');
    writeFileSync(path, 'abcdef');
    const h = await open(path, 'r');
    try {
      assert.equal((await readHead(h, 4)).toString(), 'abcd');
      assert.equal((await readHead(h, 100)).toString(), 'abcdef');
    } finally {
      await h.close();
    }
  });

  it('updateHead makes a grown short file findable by its full checksum, keeping its key', (t) => {
    const s = store(tempDir(t));
    const r: CheckpointRecord = newRecord(s, facts(1, 10, 3), Buffer.from('hi\n'), '/a.log', 0, FP, 1);
    const key = r.key;
    const full = Buffer.from('hi\nand more lines now\n');
    s.updateHead(r, 16, hashHead(full.subarray(0, 16)));
    assert.deepEqual(identify(s, facts(7, 70, 100), full, FP, notInUse), { kind: 'known', record: r });
    assert.equal(r.key, key);
  });
});
