import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfigWithComponents } from '../../src/config/load.ts';
import { componentRegistry, fullRegistry } from '../../src/registry.ts';
import { tempDir } from '../helpers/context.ts';

describe('the component registry of the CLI', () => {
  it('loads only the types a config names, then more when a reloaded config names more', async (t) => {
    const dir = tempDir(t, 'fluxo-registry-');
    const first = join(dir, 'a.yaml');
    writeFileSync(first, 'sources: { in: { type: stdin } }\nsinks: { out: { type: console, inputs: [in] } }\n');
    const registry = componentRegistry();
    assert.equal((await loadConfigWithComponents([first], registry, {})).config.sinks.size, 1);
    assert.deepEqual([...registry.sources.keys()], ['stdin']);
    assert.deepEqual([...registry.sinks.keys()], ['console']);
    assert.equal(registry.transforms.size, 0);

    const second = join(dir, 'b.yaml');
    writeFileSync(
      second,
      'sources: { in: { type: stdin } }\ntransforms: { f: { type: filter, inputs: [in], condition: "true" } }\n' +
        'sinks: { out: { type: blackhole, inputs: [f] } }\n',
    );
    assert.equal((await loadConfigWithComponents([second], registry, {})).config.transforms.size, 1);
    assert.deepEqual([...registry.transforms.keys()], ['filter']);
    assert.deepEqual([...registry.sinks.keys()].sort(), ['blackhole', 'console']);
  });

  it('names every known type in an unknown-type error, loaded or not', async (t) => {
    const dir = tempDir(t, 'fluxo-registry-');
    const file = join(dir, 'a.yaml');
    writeFileSync(file, 'sources: { in: { type: stdn } }\nsinks: { out: { type: kafak, inputs: [in] } }\n');
    const registry = componentRegistry();
    await assert.rejects(
      () => loadConfigWithComponents([file], registry, {}),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const text = error.message;
        assert.match(text, /unknown source type "stdn".*did you mean "stdin"/s);
        assert.match(text, /available: .*kafka.*otlp.*syslog/);
        assert.match(text, /unknown sink type "kafak".*did you mean "kafka"/s);
        return true;
      },
    );
    assert.equal(registry.sources.size + registry.sinks.size, 0);
  });

  it('loads the type a variable names, from the config as interpolated; fullRegistry() holds every type', async (t) => {
    const dir = tempDir(t, 'fluxo-registry-');
    const file = join(dir, 'a.yaml');
    writeFileSync(
      file,
      'sources: { in: { type: "${SOURCE_TYPE}" } }\nsinks: { out: { type: console, inputs: [in] } }\n',
    );
    const registry = componentRegistry();
    const loaded = await loadConfigWithComponents([file], registry, { SOURCE_TYPE: 'stdin' });
    assert.equal(loaded.config.sources.get('in')?.type, 'stdin');
    assert.deepEqual([...registry.sources.keys()], ['stdin']);
    const all = await fullRegistry();
    assert.deepEqual([...all.sources.keys()], [...registry.known!.sources]);
    assert.deepEqual([...all.sinks.keys()], [...registry.known!.sinks]);
  });

  it('says which component failed to load, and loads nothing for a config it cannot read', async (t) => {
    const dir = tempDir(t, 'fluxo-registry-');
    const file = join(dir, 'a.yaml');
    writeFileSync(file, 'sources: { in: { type: stdin } }\nsinks: { out: { type: console, inputs: [in] } }\n');
    const registry = componentRegistry();
    const broken = { ...registry, loadTypes: async () => Promise.reject(new Error('Cannot find module x')) };
    await assert.rejects(
      () => loadConfigWithComponents([file], broken, {}),
      /cannot load the components of .*a\.yaml: Cannot find module x/,
    );
    await assert.rejects(() => loadConfigWithComponents([join(dir, 'missing.yaml')], registry, {}), /file not found/);
    assert.equal(registry.sources.size + registry.sinks.size, 0);
  });
});
