#!/usr/bin/env node
// The CLI runs from the TypeScript sources through tsx's loader: one tree, no stale build output.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
