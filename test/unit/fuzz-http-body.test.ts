/**
 * Fuzzing HTTP request bodies as the http and otlp sources decode them: gzip (bombs, mutated and truncated
 * streams) through gunzipCapped, and ndjson / json / text through the http source's body decoder and scanJson.
 * Bounded runs in `npm test`; FLUXO_FUZZ_RUNS=<n> (scripts/fuzz.js) runs each property n times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  DecodedBodyTooLargeError,
  gunzipCapped,
  InvalidGzipError,
  NestingTooDeepError,
  scanJson,
  TooManyEventsError,
} from '../../src/codecs/body-limits.ts';
import { type BodyFormat, decodeBody, MalformedBodyError } from '../../src/sources/http/body.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

const runs = fuzzRuns;

/** What zlib hands over at most per 'data' event (its default chunk size). */
const ZLIB_CHUNK = 16 * 1024;

function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let max = 0;
  for (const child of Object.values(v as object)) max = Math.max(max, depthOf(child));
  return 1 + max;
}

describe('fuzz: gunzipCapped', () => {
  const plain = fc.oneof(
    fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
    // Bombs: highly compressible, many times the cap.
    fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 2_000_000 }))
      .map(([b, n]) => Buffer.alloc(n, b)),
  );
  const members = fc
    .array(plain, { minLength: 1, maxLength: 3 })
    .map((parts) => Buffer.concat(parts.map((p) => gzipSync(p))));
  const body = fc.oneof(
    members,
    fc
      .tuple(members, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }))
      .map(([g, flips]) => {
        const copy = Buffer.from(g);
        for (const [at, v] of flips) copy[at % copy.length] = v;
        return copy;
      }),
    fc.tuple(members, fc.nat()).map(([g, at]) => g.subarray(0, at % g.length)),
    fc.tuple(members, fc.uint8Array({ minLength: 1, maxLength: 20 })).map(([g, junk]) => Buffer.concat([g, junk])),
    fc.uint8Array({ maxLength: 100 }).map((a) => Buffer.from(a)),
  );

  it('property: never produces more than the cap + one zlib chunk; only the two declared errors', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.integer({ min: 0, max: 100_000 }), async (input, cap) => {
        try {
          const { body: out, produced } = await gunzipCapped(input, cap);
          assert.equal(out.length, produced);
          assert.ok(produced <= cap, `${produced} bytes inflated, cap ${cap}`);
        } catch (error) {
          if (error instanceof DecodedBodyTooLargeError) {
            assert.ok(error.produced <= cap + ZLIB_CHUNK, `${error.produced} bytes inflated before stopping`);
            return;
          }
          if (error instanceof InvalidGzipError) return;
          throw error;
        }
      }),
      runs(150),
    );
  });

  it('a 1 GiB bomb of ~1 MiB stops at the cap', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros, ~64 KiB of gzip
    const oneGiB = Buffer.concat(Array(16).fill(bomb)); // 16 members
    await assert.rejects(gunzipCapped(oneGiB, 1024 * 1024), (error: unknown) => {
      assert.ok(error instanceof DecodedBodyTooLargeError);
      assert.ok(error.produced <= 1024 * 1024 + ZLIB_CHUNK, `produced ${error.produced}`);
      return true;
    });
  });
});

describe('fuzz: http body decoders', () => {
  const limits = { maxEvents: 5, maxDepth: 4 };
  const json = fc.jsonValue({ maxDepth: 6 });
  const text = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.array(json, { maxLength: 8 }).map((vs) => vs.map((v) => JSON.stringify(v)).join('\n')),
    fc.array(json, { maxLength: 8 }).map((vs) => JSON.stringify(vs)),
    json.map((v) => JSON.stringify(v)),
    fc.integer({ min: 1, max: 5000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
    fc.integer({ min: 1, max: 5000 }).map((d) => `{"a":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`),
    fc.integer({ min: 0, max: 100 }).map((n) => '{}\n'.repeat(n)),
    fc.integer({ min: 0, max: 100 }).map((n) => `[${Array(n).fill('{}').join(',')}]`),
  );
  const mutated = fc
    .tuple(
      text,
      fc.nat(),
      fc.nat({ max: 3 }),
      fc.constantFrom('[', ']', '{', '}', '"', ',', '\\', '\n', '\r', ' ', 'x'),
    )
    .map(([t, at, cut, ins]) => t.slice(0, at % (t.length + 1)) + ins + t.slice((at % (t.length + 1)) + cut));

  it('property: any text in any format gives events within the caps, or one of the declared errors', () => {
    fc.assert(
      fc.property(fc.oneof(text, mutated), fc.constantFrom<BodyFormat>('ndjson', 'json', 'text'), (body, format) => {
        try {
          const events = decodeBody(format, body, limits);
          assert.ok(events.length <= limits.maxEvents, `${events.length} events`);
          for (const e of events) {
            assert.ok(e !== null && typeof e === 'object' && !Array.isArray(e));
            assert.ok(depthOf(e) <= limits.maxDepth, `an event ${depthOf(e)} levels deep`);
            assert.equal(typeof JSON.stringify(e), 'string');
          }
        } catch (error) {
          if (error instanceof assert.AssertionError) throw error;
          if (error instanceof MalformedBodyError || error instanceof TooManyEventsError) return;
          if (error instanceof NestingTooDeepError) return;
          assert.fail(`undeclared ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`);
        }
      }),
      runs(1500),
    );
  });

  it('property: scanJson agrees with JSON.parse on depth, and bounds the count it is asked to', () => {
    fc.assert(
      fc.property(fc.oneof(text, mutated), fc.integer({ min: 1, max: 8 }), (body, maxDepth) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          // malformed: scanJson may throw its limit errors or return, nothing else
          try {
            scanJson(body, maxDepth, 1, 3);
          } catch (error) {
            assert.ok(error instanceof NestingTooDeepError || error instanceof TooManyEventsError, String(error));
          }
          return;
        }
        const depth = depthOf(parsed);
        let count: number | undefined;
        try {
          count = scanJson(body, maxDepth, 1, 3);
        } catch (error) {
          if (error instanceof NestingTooDeepError) {
            assert.ok(depth > maxDepth, `refused at depth ${depth} ≤ ${maxDepth}`);
            return;
          }
          assert.ok(error instanceof TooManyEventsError, String(error));
          assert.ok(Array.isArray(parsed) && parsed.length > 3);
          return;
        }
        assert.ok(depth <= maxDepth, `accepted at depth ${depth} > ${maxDepth}`);
        if (Array.isArray(parsed)) assert.equal(count, parsed.length);
      }),
      runs(1500),
    );
  });
});
