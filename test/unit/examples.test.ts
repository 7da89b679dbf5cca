import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, formatProblem } from '../../src/config/errors.ts';
import { loadConfigFiles } from '../../src/config/load.ts';
import { fullRegistry } from '../../src/registry.ts';

const registry = await fullRegistry();

const ROOT = new URL('../../', import.meta.url).pathname;

/** What a user copies first must load: every example config, and the default one, with the real registry. */
describe('example configs', () => {
  const files = [
    'fluxo.yaml',
    ...readdirSync(join(ROOT, 'examples'))
      .filter((n) => n.endsWith('.yaml') && !n.endsWith('.tests.yaml'))
      .map((n) => join('examples', n)),
  ];

  it('there are examples to check', () => {
    assert.ok(files.length > 5, files.join(', '));
  });

  for (const file of files) {
    it(`${file} loads without a problem`, () => {
      try {
        const { config } = loadConfigFiles([join(ROOT, file)], registry, {});
        assert.ok(config.sinks.size > 0, `${file} has no sink`);
      } catch (error) {
        if (error instanceof ConfigError) assert.fail(error.problems.map((p) => formatProblem(p)).join('\n'));
        throw error;
      }
    });
  }
});
