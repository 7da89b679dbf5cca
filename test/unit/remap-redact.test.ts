import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { passesLuhn, REDACT_PATTERNS, Redactor } from '../../src/codecs/redact.ts';
import type { Event } from '../../src/core/event.ts';
import { remapTransform } from '../../src/transforms/remap.ts';
import { componentContext } from '../helpers/context.ts';

const mask = new Redactor({ patterns: [...REDACT_PATTERNS], replacement: '[X]' });

describe('redaction', () => {
  it('masks IPv4 and IPv6 addresses, e-mails and card numbers in free text', () => {
    const text =
      'login from 203.0.113.9 and [2001:db8::1]:443 by Jane.Doe+shop@mail.example.co.uk, card 4111 1111 1111 1111 / 5500-0000-0000-0004 ok';
    assert.equal(mask.redactString(text), 'login from [X] and [[X]]:443 by [X], card [X] / [X] ok');
  });

  it('leaves look-alikes alone: versions, timestamps, MACs, C++ scopes, order ids that fail Luhn', () => {
    for (const text of [
      'version 1.2.3.4.5 released',
      'at 10:33:51 on 2025.03.05',
      'mac 00:1a:2b:3c:4d:5e',
      'std::vector<int> and foo::bar',
      'order 1234567890123 shipped',
      'user@localhost',
      '999.1.1.1',
    ]) {
      assert.equal(mask.redactString(text), text);
    }
  });

  it('IPv6 forms: compressed, loopback, zone, embedded IPv4', () => {
    assert.equal(
      mask.redactString('a ::1 b fe80::1%eth0 c ::ffff:192.0.2.1 d 2001:0db8:0000:0000:0000:0000:0000:0001'),
      'a [X] b [X] c [X] d [X]',
    );
  });

  it('a keyed hash replaces matches deterministically, so joins still work', () => {
    const key = 'k'.repeat(32);
    const hasher = new Redactor({ patterns: ['ipv4'], replacement: '', hashKey: key, hashLength: 12 });
    const expected = createHmac('sha256', key).update('203.0.113.9').digest('hex').slice(0, 12);
    assert.equal(hasher.redactString('client 203.0.113.9'), `client ${expected}`);
    assert.equal(hasher.redactString('again 203.0.113.9'), `again ${expected}`);
    assert.notEqual(hasher.redactString('203.0.113.10'), expected);
    const otherKey = new Redactor({ patterns: ['ipv4'], replacement: '', hashKey: 'z'.repeat(32) });
    assert.notEqual(otherKey.redactString('203.0.113.9'), expected);
  });

  it('user regexes, and strings inside objects and lists', () => {
    const r = new Redactor({ patterns: [{ regex: 'token=\\w+' }, 'email'], replacement: '***' });
    assert.deepEqual(r.redactValue({ q: 'a token=abc123 b', list: ['x@y.io', 3], nested: { deep: 'token=z' } }), {
      q: 'a *** b',
      list: ['***', 3],
      nested: { deep: '***' },
    });
  });

  it('Luhn check', () => {
    assert.ok(passesLuhn('4111111111111111'));
    assert.ok(passesLuhn('4111-1111-1111-1111'));
    assert.ok(!passesLuhn('4111111111111112'));
    assert.ok(!passesLuhn('0000'));
  });

  it('the remap redact step redacts the listed fields, message by default, input untouched', () => {
    const ctx = componentContext('r', '/x', 'transform', 'remap');
    const t = remapTransform.build(
      remapTransform.options.parse({
        steps: [{ redact: {} }, { redact: { fields: ['client', 'user.email'], hash_key: 'a-long-enough-secret-key' } }],
      }),
      ctx,
    );
    const input: Event = Object.freeze({
      message: 'GET /?mail=a@b.example from 198.51.100.4',
      client: '198.51.100.4',
      user: Object.freeze({ email: 'a@b.example', id: 7 }),
    });
    const pushed: Event[] = [];
    t.process([input], { push: (e) => pushed.push(...e), deadLetter: () => assert.fail('no dead letter') });
    const out = pushed[0]!;
    assert.equal(out.message, 'GET /?mail=[REDACTED] from [REDACTED]');
    assert.match(out.client as string, /^[0-9a-f]{16}$/);
    assert.match((out.user as { email: string }).email, /^[0-9a-f]{16}$/);
    assert.equal((out.user as { id: number }).id, 7);
    assert.equal((input.user as { email: string }).email, 'a@b.example');
  });
});
