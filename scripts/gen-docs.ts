// Generates docs/components.md from the component schemas, so the reference cannot drift from the code.
// Usage: npm run docs  (a test fails when the committed file is out of date).
import { writeFileSync } from 'node:fs';
import { renderComponentsDoc } from '../src/config/docs.ts';
import { registry } from '../src/registry.ts';

const target = new URL('../docs/components.md', import.meta.url);
writeFileSync(target, renderComponentsDoc(registry));
console.log(`wrote ${target.pathname}`);
