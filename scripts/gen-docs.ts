// Generates docs/components.md from the component schemas and docs/errors.md from the error catalogue, so the
// reference cannot drift from the code.
// Usage: npm run docs  (tests fail when a committed file is out of date).
import { writeFileSync } from 'node:fs';
import { renderComponentsDoc, renderErrorsDoc } from '../src/config/docs.ts';
import { errorCatalogue } from '../src/core/error-codes.ts';
import { fullRegistry } from '../src/registry.ts';

const registry = await fullRegistry();

for (const [name, text] of [
  ['components.md', renderComponentsDoc(registry)],
  ['errors.md', renderErrorsDoc(errorCatalogue)],
] as const) {
  const target = new URL(`../docs/${name}`, import.meta.url);
  writeFileSync(target, text);
  console.log(`wrote ${target.pathname}`);
}
