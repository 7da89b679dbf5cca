import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileCel } from '../../src/core/cel.ts';

describe('CEL expressions over events', () => {
  const cases: [string, Record<string, unknown>, unknown][] = [
    ['int(status) >= 500', { status: '503' }, true],
    ['status >= 500', { status: 200 }, false],
    ['n % 2 == 1', { n: 3 }, true],
    ['n + 1 == 4', { n: 3 }, true],
    ['message.contains("ERROR")', { message: 'an ERROR here' }, true],
    ['has(event.status)', { status: 1 }, true],
    ['has(event.status)', {}, false],
    ['!has(event._parse_error)', { message: 'x' }, true],
    ['event.bytes > 1000', { bytes: 5000 }, true],
    ['event.user.name == "ann"', { user: { name: 'ann' } }, true],
  ];
  for (const [source, event, expected] of cases) {
    it(`${source} on ${JSON.stringify(event)} → ${expected}`, () => {
      assert.equal(compileCel(source)(event), expected);
    });
  }

  it('a field that is missing without has() is an error the caller counts', () => {
    assert.throws(() => compileCel('status >= 500')({}), /Unknown variable: status/);
  });

  it('a syntax error is reported when compiling', () => {
    assert.throws(() => compileCel('int(status >='));
  });
});
