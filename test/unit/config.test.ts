import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigProblem, closestName, formatProblem } from '../../src/config/errors.ts';
import { loadConfigFiles, loadConfigTexts } from '../../src/config/load.ts';
import { configJsonSchema } from '../../src/config/schema.ts';
import { createRegistry } from '../../src/core/pipeline-config.ts';
import { blackholeSink } from '../../src/sinks/blackhole.ts';
import { consoleSink } from '../../src/sinks/console.ts';
import { fileSink } from '../../src/sinks/file.ts';
import { forwardSource } from '../../src/sources/forward.ts';
import { httpSource } from '../../src/sources/http.ts';
import { socketSource } from '../../src/sources/socket.ts';
import { syslogSource } from '../../src/sources/syslog.ts';
import { filterTransform } from '../../src/transforms/filter.ts';
import { manualSource } from '../helpers/components.ts';
import { tempDir } from '../helpers/context.ts';

const registry = createRegistry([manualSource(new Map()), filterTransform, consoleSink, blackholeSink]);

function problems(text: string, env: NodeJS.ProcessEnv = {}): ConfigProblem[] {
  try {
    loadConfigTexts([{ file: 'fluxo.yaml', text }], registry, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return [...error.problems];
  }
  assert.fail('expected the config to be rejected');
}

function one(text: string, env: NodeJS.ProcessEnv = {}): ConfigProblem {
  const list = problems(text, env);
  assert.equal(list.length, 1, `expected one problem, got:\n${list.map(formatProblem).join('\n')}`);
  return list[0]!;
}

const valid = `
sources:
  in: { type: manual }
transforms:
  errors: { type: filter, inputs: [in], condition: 'int(status) >= 500' }
sinks:
  out: { type: console, inputs: [errors], encoding: text }
`;

describe('config loading', () => {
  it('accepts a valid config and applies defaults', () => {
    const { config } = loadConfigTexts([{ file: 'fluxo.yaml', text: valid }], registry, {});
    assert.equal(config.sources.get('in')!.type, 'manual');
    const out = config.sinks.get('out')!;
    assert.deepEqual(out.inputs, ['errors']);
    assert.deepEqual(out.options, { encoding: 'text', target: 'stdout' });
    assert.deepEqual(out.buffer, { type: 'memory', maxEvents: 10_000, maxBytes: 64 * 1024 * 1024, whenFull: 'block' });
    assert.equal(out.retry.maxAttempts, 0);
    assert.equal(config.api.address, '127.0.0.1:8686');
    assert.equal(config.shutdownTimeoutMs, 30_000);
  });

  it('a disk buffer: defaults, and durations and sizes with units', () => {
    const disk = (buffer: string) =>
      loadConfigTexts(
        [{ file: 'fluxo.yaml', text: valid.replace('encoding: text', `encoding: text, buffer: ${buffer}`) }],
        registry,
        {},
      ).config.sinks.get('out')!.buffer;
    assert.deepEqual(disk('{ type: disk }'), {
      type: 'disk',
      maxSize: 1024 ** 3,
      whenFull: 'block',
      sync: 'always',
      syncIntervalMs: 1000,
      commitIntervalMs: 20,
      writeDelayMs: 100,
      maxSegmentSize: undefined,
    });
    assert.deepEqual(
      disk('{ type: disk, max_size: 2GiB, sync: interval, sync_interval: 5s, commit_interval: 0, write_delay: 1s }'),
      {
        type: 'disk',
        maxSize: 2 * 1024 ** 3,
        whenFull: 'block',
        sync: 'interval',
        syncIntervalMs: 5000,
        commitIntervalMs: 0,
        writeDelayMs: 1000,
        maxSegmentSize: undefined,
      },
    );
  });

  it("batch.timeout: the sink's own default unless set", () => {
    const withFile = createRegistry([manualSource(new Map()), blackholeSink, fileSink]);
    const text = (fileBatch: string) => `
sources: { in: { type: manual } }
sinks:
  hole: { type: blackhole, inputs: [in] }
  files: { type: file, inputs: [in], path: /tmp/x.ndjson${fileBatch} }
`;
    const defaults = loadConfigTexts([{ file: 'f.yaml', text: text('') }], withFile, {}).config;
    assert.equal(defaults.sinks.get('hole')!.batchTimeoutMs, 0);
    assert.equal(defaults.sinks.get('files')!.batchTimeoutMs, 50, 'the file sink lingers: one fdatasync per write');
    assert.equal(defaults.sinks.get('files')!.batchMaxEvents, 1000);
    const set = loadConfigTexts([{ file: 'f.yaml', text: text(', batch: { timeout: 0 }') }], withFile, {}).config;
    assert.equal(set.sinks.get('files')!.batchTimeoutMs, 0);
    const seconds = loadConfigTexts([{ file: 'f.yaml', text: text(', batch: { timeout: 2s } ') }], withFile, {});
    assert.equal(seconds.config.sinks.get('files')!.batchTimeoutMs, 2000);
  });

  it('reads JSON too, with line numbers', () => {
    const p = (() => {
      try {
        loadConfigTexts(
          [{ file: 'fluxo.json', text: '{\n  "sources": {\n    "in": { "type": "manul" }\n  }\n}' }],
          registry,
          {},
        );
      } catch (e) {
        return (e as ConfigError).problems[0]!;
      }
      assert.fail('expected rejection');
    })();
    assert.equal(p.file, 'fluxo.json');
    assert.equal(p.line, 3);
    assert.match(p.message, /unknown source type "manul"; did you mean "manual"\?/);
  });

  it('YAML syntax error: file, line and column', () => {
    const p = one('sources:\n  in: { type: manual\nsinks: {}\n');
    assert.equal(p.code, 'FLUXO_CONFIG_SYNTAX');
    assert.ok(p.line >= 2, `line ${p.line}`);
    assert.match(formatProblem(p), /^fluxo\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('unknown key: names the key, the expected keys and the closest one', () => {
    const p = one(
      valid.replace(
        '  out: { type: console, inputs: [errors], encoding: text }',
        '  out:\n    type: console\n    inputs: [errors]\n    bufer: { type: memory }',
      ),
    );
    assert.equal(p.code, 'FLUXO_CONFIG_UNKNOWN_KEY');
    assert.equal(p.path, 'sinks.out.bufer');
    assert.equal(p.line, 10);
    assert.equal(p.column, 5);
    assert.match(p.message, /unknown key "bufer"; did you mean "buffer"\?; expected one of: .*inputs.*encoding/);
  });

  it('unknown top-level key', () => {
    const p = one(`sinkz: {}\n${valid}`);
    assert.equal(p.line, 1);
    assert.match(p.message, /unknown key "sinkz"; did you mean "sinks"\?/);
  });

  it('unknown nested key inside a buffer', () => {
    const p = one(valid.replace('encoding: text }', 'encoding: text, buffer: { type: memory, max_event: 5 } }'));
    assert.equal(p.path, 'sinks.out.buffer.max_event');
    assert.match(p.message, /did you mean "max_events"\?/);
  });

  it('unknown component type, with a suggestion and the list of types', () => {
    const p = one(valid.replace('type: console', 'type: consol'));
    assert.equal(p.code, 'FLUXO_CONFIG_UNKNOWN_TYPE');
    assert.equal(p.path, 'sinks.out.type');
    assert.equal(p.line, 7);
    assert.match(p.message, /unknown sink type "consol"; did you mean "console"\?; available: blackhole, console/);
  });

  it('a type of another kind says where it belongs', () => {
    const p = one(valid.replace('in: { type: manual }', 'in: { type: console }'));
    assert.match(p.message, /"console" is a sink type, it belongs under sinks/);
  });

  it('missing type', () => {
    const p = one(valid.replace('in: { type: manual }', 'in: {}'));
    assert.equal(p.code, 'FLUXO_CONFIG_MISSING_KEY');
    assert.equal(p.line, 3);
    assert.match(p.message, /missing required key "type"/);
  });

  it('wrong value type: expected and found', () => {
    const p = one(valid.replace('encoding: text', 'encoding: text, concurrency: "two"'));
    assert.equal(p.code, 'FLUXO_CONFIG_INVALID_TYPE');
    assert.equal(p.path, 'sinks.out.concurrency');
    assert.match(p.message, /expected a number, found "two"/);
  });

  it('bad enum value: lists the choices and the closest', () => {
    const p = one(valid.replace('encoding: text', 'encoding: jsn'));
    assert.equal(p.path, 'sinks.out.encoding');
    // `ndjson` is the console sink's codec since the sink kit; `json` stays as its old spelling.
    assert.match(p.message, /expected one of "ndjson", "text", "json", found "jsn"; did you mean "json"\?/);
  });

  it('bad size and duration', () => {
    const list = problems(
      `shutdown_timeout: soon\n${valid.replace('encoding: text', 'buffer: { type: memory, max_bytes: lots }')}`,
    );
    const byPath = new Map(list.map((p) => [p.path, p]));
    assert.match(byPath.get('shutdown_timeout')!.message, /expected a duration like 250ms, 30s.*found "soon"/);
    assert.equal(byPath.get('shutdown_timeout')!.line, 1);
    assert.match(byPath.get('sinks.out.buffer.max_bytes')!.message, /expected a size like 64KiB.*found "lots"/);
  });

  it('invalid CEL condition is caught at validation, at its line', () => {
    const p = one(valid.replace("'int(status) >= 500'", "'int(status >='"));
    assert.equal(p.path, 'transforms.errors.condition');
    assert.equal(p.line, 5);
    assert.match(p.message, /invalid CEL expression/);
  });

  it('missing required option', () => {
    const p = one(valid.replace(", condition: 'int(status) >= 500'", ''));
    assert.equal(p.code, 'FLUXO_CONFIG_MISSING_KEY');
    assert.equal(p.path, 'transforms.errors.condition');
    assert.equal(p.line, 5);
  });

  it('environment interpolation with defaults, and a missing variable at its line', () => {
    const text =
      'data_dir: ${DIR:-/tmp/x}\nsources:\n  in: { type: manual }\nsinks:\n  out: { type: console, inputs: [in], encoding: ${ENC} }\n';
    const { config } = loadConfigTexts([{ file: 'f.yaml', text }], registry, { ENC: 'text' });
    assert.equal(config.dataDir, '/tmp/x');
    assert.equal(config.sinks.get('out')!.options.encoding, 'text');
    const p = one(text);
    assert.equal(p.code, 'FLUXO_CONFIG_MISSING_ENV');
    assert.equal(p.line, 5);
    assert.match(p.message, /environment variable ENC is not set/);
    const escaped = loadConfigTexts(
      [
        {
          file: 'f.yaml',
          text: `# \${NOT_SET} in a comment is left alone\n${valid.replace("'int(status) >= 500'", () => '\'message == "$${HOME}"\'')}`,
        },
      ],
      registry,
      {},
    );
    assert.equal(escaped.config.transforms.get('errors')!.options.condition, 'message == "${HOME}"');
  });

  it('unknown input id, with the closest id', () => {
    const p = one(valid.replace('inputs: [errors]', 'inputs: [erors]'));
    assert.equal(p.code, 'FLUXO_CONFIG_UNKNOWN_INPUT');
    assert.equal(p.path, 'sinks.out.inputs.0');
    assert.equal(p.line, 7);
    assert.match(p.message, /unknown input "erors".*did you mean "errors"\?/);
  });

  it('an input that is a sink', () => {
    const p = one(`${valid}  other: { type: blackhole, inputs: [out] }\n`);
    assert.match(p.message, /input "out" is a sink/);
  });

  it('cycle between transforms', () => {
    const p = one(`
sources: { in: { type: manual } }
transforms:
  a: { type: filter, inputs: [in, c], condition: 'true' }
  b: { type: filter, inputs: [a], condition: 'true' }
  c: { type: filter, inputs: [b], condition: 'true' }
sinks: { out: { type: blackhole, inputs: [c] } }
`);
    assert.equal(p.code, 'FLUXO_CONFIG_CYCLE');
    assert.match(p.message, /cycle: a -> b -> c -> a/);
    assert.equal(p.line, 4);
  });

  it('no inputs', () => {
    const p = one(valid.replace('inputs: [errors]', 'inputs: []'));
    assert.equal(p.path, 'sinks.out.inputs');
    assert.match(p.message, /at least one input/);
  });

  it('duplicate ids: in one map, across kinds, across files', (t) => {
    assert.equal(one(`sources:\n  in: { type: manual }\n  in: { type: manual }\n`).code, 'FLUXO_CONFIG_DUPLICATE_ID');
    const across = one(`${valid}  in: { type: blackhole, inputs: [in] }\n`);
    assert.equal(across.code, 'FLUXO_CONFIG_DUPLICATE_ID');
    assert.equal(across.line, 8);
    assert.match(across.message, /already used by source "in"/);
    const dir = tempDir(t);
    writeFileSync(join(dir, 'a.yaml'), valid);
    writeFileSync(join(dir, 'b.yaml'), 'sinks:\n  out: { type: blackhole, inputs: [in] }\n');
    try {
      loadConfigFiles([join(dir, 'a.yaml'), join(dir, 'b.yaml')], registry, {});
      assert.fail('expected rejection');
    } catch (error) {
      const p = (error as ConfigError).problems[0]!;
      assert.equal(p.file, join(dir, 'b.yaml'));
      assert.equal(p.line, 2);
      assert.match(p.message, /duplicate id "out".*in .*a\.yaml/);
    }
  });

  it('reserved and malformed ids', () => {
    assert.match(one(`${valid}  dead_letter: { type: blackhole, inputs: [in] }\n`).message, /reserved/);
    assert.match(one(`${valid}  "a.b": { type: blackhole, inputs: [in] }\n`).message, /invalid id "a.b"/);
  });

  it('lists every problem, not just the first', () => {
    const list = problems(`
sources:
  in: { type: manul }
sinks:
  out: { type: console, inputs: [nowhere], encoding: xml }
  two: { type: blackhole, inputs: [in], colour: red }
`);
    assert.ok(list.length >= 4, list.map(formatProblem).join('\n'));
  });

  it('merges several files: components combine, later global settings win', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'a.yaml'), `data_dir: /tmp/a\n${valid}`);
    writeFileSync(join(dir, 'b.yaml'), 'data_dir: /tmp/b\nsinks:\n  more: { type: blackhole, inputs: [in] }\n');
    const { config } = loadConfigFiles([join(dir, 'a.yaml'), join(dir, 'b.yaml')], registry, {});
    assert.equal(config.dataDir, '/tmp/b');
    assert.deepEqual([...config.sinks.keys()].sort(), ['more', 'out']);
  });

  it('warns about a source nobody reads', () => {
    const { warnings } = loadConfigTexts([{ file: 'f.yaml', text: valid }], registry, {});
    assert.equal(warnings.length, 0);
    const w = loadConfigTexts(
      [{ file: 'f.yaml', text: `${valid.replace('sources:\n', 'sources:\n  lonely: { type: manual }\n')}` }],
      registry,
      {},
    ).warnings;
    assert.equal(w.length, 1);
    assert.match(w[0]!.message, /source "lonely" is not an input/);
  });

  it('a missing file is reported by name', () => {
    assert.throws(
      () => loadConfigFiles(['/nonexistent/fluxo.yaml'], registry, {}),
      /\/nonexistent\/fluxo\.yaml: file not found/,
    );
  });
});

describe('closestName', () => {
  for (const [name, candidates, expected] of [
    ['bufer', ['buffer', 'batch'], 'buffer'],
    ['sockt', ['socket', 'stdin'], 'socket'],
    ['fiel', ['file', 'filter'], 'file'],
    ['zzzzzz', ['socket', 'stdin'], undefined],
  ] as const) {
    it(`${name} -> ${expected}`, () => assert.equal(closestName(name, candidates), expected));
  }
});

describe('fluxo schema', () => {
  it('describes every component type with its options', () => {
    const schema = JSON.stringify(configJsonSchema(registry));
    for (const text of ['"console"', '"blackhole"', '"filter"', 'condition', 'max_events', 'when_full', 'data_dir']) {
      assert.ok(schema.includes(text), `schema mentions ${text}`);
    }
  });
});

describe('cross-field checks of component options', () => {
  it('a refinement on the options object is reported by validation, at its key', () => {
    const withCheck = createRegistry([
      manualSource(new Map()),
      consoleSink,
      {
        ...filterTransform,
        type: 'picky',
        options: filterTransform.options.superRefine((o, ctx) => {
          if (o.condition === 'true') ctx.addIssue({ code: 'custom', path: ['condition'], message: 'say something' });
        }),
      },
    ]);
    try {
      loadConfigTexts(
        [
          {
            file: 'f.yaml',
            text: "sources: { in: { type: manual } }\ntransforms:\n  p: { type: picky, inputs: [in], condition: 'true' }\nsinks: { out: { type: console, inputs: [p] } }\n",
          },
        ],
        withCheck,
        {},
      );
      assert.fail('expected rejection');
    } catch (error) {
      const p = (error as ConfigError).problems[0]!;
      assert.equal(p.path, 'transforms.p.condition');
      assert.equal(p.line, 3);
      assert.match(p.message, /say something/);
    }
  });
});

describe('listen addresses (issue 13, item 11)', () => {
  const listening = createRegistry([socketSource, syslogSource, httpSource, forwardSource, blackholeSink]);
  const load = (sources: string, top = 'api: { enabled: false }') => {
    const ids = [...sources.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1]);
    const text = `${top}\nsources:\n${sources}\nsinks:\n  out: { type: blackhole, inputs: [${ids.join(', ')}] }\n`;
    return loadConfigTexts([{ file: 'f.yaml', text }], listening, {});
  };
  const rejected = (sources: string, top?: string): ConfigProblem[] => {
    try {
      load(sources, top);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return [...error.problems];
    }
    assert.fail('expected the config to be rejected');
  };

  for (const [address, why] of [
    ['127.0.0.1:99999', /port 99999 is outside 0-65535/],
    ['127.0.0.1:65536', /port 65536 is outside 0-65535/],
    ['999.1.2.3:5514', /"999\.1\.2\.3" is not an IPv4 address/],
    ['bad..host:5514', /"bad\.\.host" is not a valid hostname/],
    ['::1:5514', /IPv6 addresses go in brackets/],
    ['[zz::1]:5514', /not an IPv6 address/],
    [':5514', /the host is missing/],
  ] as const) {
    it(`rejects ${address} at its key and line`, () => {
      const [p, ...more] = rejected(`  in:\n    type: socket\n    address: "${address}"`);
      assert.deepEqual(more, []);
      assert.equal(p!.code, 'FLUXO_CONFIG_INVALID_VALUE');
      assert.equal(p!.path, 'sources.in.address');
      assert.equal(p!.line, 5);
      assert.match(p!.message, why);
    });
  }

  it('accepts the ports 0 and 65535, IPv6 in brackets and hostnames', () => {
    for (const address of [
      '127.0.0.1:0',
      '0.0.0.0:65535',
      '[::1]:5514',
      '[::]:5514',
      'localhost:5514',
      'log-1.example:9',
    ])
      load(`  in: { type: socket, address: "${address}" }`);
  });

  it('two listeners on one host:port and transport: rejected, naming both', () => {
    const [p, ...more] = rejected(
      '  first: { type: socket, address: 127.0.0.1:5514 }\n  second: { type: syslog, address: 127.0.0.1:5514 }',
    );
    assert.deepEqual(more, []);
    assert.equal(p!.code, 'FLUXO_CONFIG_ADDRESS_CONFLICT');
    assert.equal(p!.path, 'sources.second.address');
    assert.equal(p!.line, 4);
    assert.match(
      p!.message,
      /source "second" listens on tcp 127\.0\.0\.1:5514, the port of source "first" \(f\.yaml:3\)/,
    );
  });

  it('a wildcard host conflicts with every host of the port; defaults count too; so does the api', () => {
    const wildcard = rejected(
      '  a: { type: socket, address: 0.0.0.0:9000 }\n  b: { type: socket, address: 127.0.0.1:9000 }',
    );
    assert.match(
      wildcard[0]!.message,
      /source "b" listens on tcp 127\.0\.0\.1:9000, the port of source "a" .*\(0\.0\.0\.0:9000\)/,
    );
    const defaults = rejected('  a: { type: http }\n  b: { type: http }');
    assert.equal(defaults[0]!.path, 'sources.b.address');
    assert.match(defaults[0]!.message, /127\.0\.0\.1:8080/);
    const api = rejected('  a: { type: http, address: 127.0.0.1:8686 }', '');
    assert.equal(api[0]!.path, 'sources.a.address');
    assert.match(api[0]!.message, /the port of the api/);
  });

  it('tcp and udp may share a port (syslog on 5514 twice), port 0 never conflicts, nor do other hosts', () => {
    load(
      '  t: { type: syslog, mode: tcp, address: 127.0.0.1:5514 }\n  u: { type: syslog, mode: udp, address: 127.0.0.1:5514 }\n' +
        '  z1: { type: socket, address: 127.0.0.1:0 }\n  z2: { type: socket, address: 127.0.0.1:0 }\n' +
        '  h1: { type: socket, address: 127.0.0.1:7000 }\n  h2: { type: socket, address: 127.0.0.2:7000 }',
    );
    // forward listens on UDP too (heartbeats), unless told not to
    const heartbeat = rejected(
      '  f: { type: forward, address: 127.0.0.1:24224 }\n  u: { type: syslog, mode: udp, address: 127.0.0.1:24224 }',
    );
    assert.match(heartbeat[0]!.message, /listens on udp 127\.0\.0\.1:24224/);
    load(
      '  f: { type: forward, address: 127.0.0.1:24224, heartbeat_udp: false }\n  u: { type: syslog, mode: udp, address: 127.0.0.1:24224 }',
    );
  });
});

describe('the API beyond loopback needs api.auth (docs/security.md)', () => {
  const registry = createRegistry([socketSource, blackholeSink]);
  const load = (api: string) =>
    loadConfigTexts(
      [
        {
          file: 'f.yaml',
          text: `${api}\nsources:\n  s: { type: socket, address: 127.0.0.1:0 }\nsinks:\n  o: { type: blackhole, inputs: [s] }\n`,
        },
      ],
      registry,
      {},
    );

  for (const address of ['0.0.0.0:8686', '10.1.2.3:8686', '[::]:8686']) {
    it(`rejects api.address ${address} without api.auth, at the api's line`, () => {
      assert.throws(
        () => load(`api: { address: "${address}" }`),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          const p = error.problems[0]!;
          assert.equal(p.path, 'api.auth');
          assert.equal(p.line, 1);
          assert.match(p.message, /reachable beyond this host: set api\.auth/);
          return true;
        },
      );
    });
  }

  it('takes loopback addresses without auth, and any address with it', () => {
    for (const address of ['127.0.0.1:8686', 'localhost:8686', '[::1]:8686', '127.0.0.2:0']) {
      assert.equal(load(`api: { address: "${address}" }`).config.api.auth, undefined);
    }
    const open = load('api: { address: "0.0.0.0:8686", auth: { strategy: bearer, token: t0k } }');
    assert.deepEqual(open.config.api.auth, { strategy: 'bearer', token: 't0k' });
    load('api: { enabled: false, address: "0.0.0.0:8686" }');
  });
});

describe('an empty pipeline (issue 13, item 11)', () => {
  for (const [name, text, missing] of [
    ['an empty file', '', 'no sources and no sinks'],
    ['only global settings', 'data_dir: ./data\n', 'no sources and no sinks'],
    ['no sinks', 'sources:\n  in: { type: manual }\n', 'no sinks'],
    ['no sources', 'sinks:\n  out: { type: console, inputs: [dead_letter] }\n', 'no sources'],
  ] as const) {
    it(`${name}: rejected with a clear message`, () => {
      const p = one(text);
      assert.equal(p.code, 'FLUXO_CONFIG_EMPTY');
      assert.match(p.message, new RegExp(`the pipeline has ${missing}: declare at least one source`));
    });
  }
});
