import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MultilineAggregator,
  type MultilineOptions,
  type MultilineOutput,
  MultilineRules,
  multilineOptions,
} from '../../src/codecs/multiline.ts';

const JAVA: MultilineOptions = multilineOptions().parse({
  start_pattern: '^[^\\s]',
  condition_pattern: '^\\s+(at |\\.\\.\\. \\d+ more)|^Caused by:',
  mode: 'continue_through',
});

/** Feeds lines (position = index), flushes at the end; returns the events as [message, position]. */
function aggregate(options: Partial<MultilineOptions>, lines: string[], flush = true): [string, number][] {
  const rules = new MultilineRules(multilineOptions().parse({ ...JAVA, ...options }));
  const agg = new MultilineAggregator(rules);
  const out: MultilineOutput = { messages: [], positions: [] };
  lines.forEach((line, i) => {
    agg.push(line, i, Buffer.byteLength(line), 0, out);
  });
  if (flush) agg.flush(out);
  return out.messages.map((m, i) => [m, out.positions[i]!]);
}

describe('multiline aggregation (Vector rules)', () => {
  it('continue_through: a Java stack trace with a cause becomes one event at its first line', () => {
    const lines = [
      '2026-11-24 10:00:00 INFO started',
      '2026-11-24 10:00:01 ERROR request failed',
      'java.lang.IllegalStateException: boom',
      '\tat com.example.Service.run(Service.java:42)',
      '\tat com.example.Main.main(Main.java:7)',
      'Caused by: java.io.IOException: disk',
      '\tat com.example.Disk.write(Disk.java:9)',
      '\t... 2 more',
      '2026-11-24 10:00:02 INFO next',
    ];
    assert.deepEqual(aggregate({}, lines), [
      ['2026-11-24 10:00:00 INFO started', 0],
      ['2026-11-24 10:00:01 ERROR request failed', 1],
      [lines.slice(2, 8).join('\n'), 2],
      ['2026-11-24 10:00:02 INFO next', 8],
    ]);
  });

  it('continue_through: a line matching neither pattern passes through alone', () => {
    assert.deepEqual(aggregate({}, ['   indented orphan', 'start', '  at x', 'next']), [
      ['   indented orphan', 0],
      ['start\n  at x', 1],
      ['next', 3],
    ]);
  });

  it('continue_past: backslash-continued lines plus the one after them', () => {
    const got = aggregate({ start_pattern: '\\\\$', condition_pattern: '\\\\$', mode: 'continue_past' }, [
      'plain',
      'first \\',
      'second \\',
      'third',
      'after',
    ]);
    assert.deepEqual(got, [
      ['plain', 0],
      ['first \\\nsecond \\\nthird', 1],
      ['after', 4],
    ]);
  });

  it('halt_before: everything up to the next line starting with a timestamp', () => {
    const got = aggregate({ start_pattern: '^\\[', condition_pattern: '^\\[', mode: 'halt_before' }, [
      '[1] a',
      'x',
      'y',
      '[2] b',
      '[3] c',
      'z',
    ]);
    assert.deepEqual(got, [
      ['[1] a\nx\ny', 0],
      ['[2] b', 3],
      ['[3] c\nz', 4],
    ]);
  });

  it('halt_with: everything up to and including a line ending with ;', () => {
    const got = aggregate({ start_pattern: '^SELECT|^INSERT', condition_pattern: ';$', mode: 'halt_with' }, [
      'SELECT *',
      'FROM t',
      'WHERE x;',
      'noise',
      'INSERT INTO t;',
      'VALUES (1);',
    ]);
    assert.deepEqual(got, [
      ['SELECT *\nFROM t\nWHERE x;', 0],
      ['noise', 3],
      ['INSERT INTO t;\nVALUES (1);', 4],
    ]);
  });

  it('holds the group and reports its first position until the next line decides', () => {
    const agg = new MultilineAggregator(new MultilineRules(JAVA));
    const out: MultilineOutput = { messages: [], positions: [] };
    agg.push('Exception', 100, 9, 0, out);
    agg.push('  at a', 110, 6, 0, out);
    assert.equal(out.messages.length, 0);
    assert.equal(agg.holding, true);
    assert.equal(agg.heldPosition, 100);
    agg.reset();
    assert.equal(agg.holding, false);
    assert.equal(agg.heldPosition, -1);
  });

  it('a group waiting longer than timeout for its next line is emitted; not before', () => {
    const agg = new MultilineAggregator(new MultilineRules(multilineOptions().parse({ ...JAVA, timeout: '500ms' })));
    const out: MultilineOutput = { messages: [], positions: [] };
    agg.push('Exception', 0, 9, 1000, out);
    agg.push('  at a', 10, 6, 1200, out);
    assert.equal(agg.expire(1699, out), false);
    assert.equal(agg.overdue(1699), false);
    assert.equal(agg.overdue(1700), true);
    assert.equal(agg.expire(1700, out), true);
    assert.deepEqual(out.messages, ['Exception\n  at a']);
    assert.equal(agg.expire(5000, out), false, 'nothing held any more');
  });

  it('a group reaching max_bytes is emitted and the rest goes on as a new group, counted', () => {
    const agg = new MultilineAggregator(new MultilineRules(multilineOptions().parse({ ...JAVA, max_bytes: 20 })));
    const out: MultilineOutput = { messages: [], positions: [] };
    agg.push('Exception', 0, 9, 0, out); // 9
    agg.push('  at aaaa', 10, 9, 0, out); // 9 + 1 + 9 = 19
    agg.push('  at bbbb', 20, 9, 0, out); // would be 29 > 20
    agg.flush(out);
    assert.deepEqual(out.messages, ['Exception\n  at aaaa', '  at bbbb']);
    assert.deepEqual(out.positions, [0, 20]);
    assert.equal(agg.splitGroups, 1);
  });

  it('rejects an invalid regular expression at validation, naming the problem', () => {
    const r = multilineOptions().safeParse({ start_pattern: '(', condition_pattern: 'x', mode: 'halt_with' });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error!.issues), /invalid regular expression/);
  });
});
