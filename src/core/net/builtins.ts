import { lazyRequire } from '../lazy-import.ts';

/*
 * node:http, node:https and node:tls, loaded with require() when first used instead of imported.
 *
 * An `import` of a built-in module makes Node build the module's ES facade, which reads every export once. On
 * Node ≥ 22 node:http has lazy exports backed by Node's bundled undici (WebSocket, EventSource and the like):
 * reading them compiles and runs undici, ~45 ms of CPU at every start (measured on Node 26 with --cpu-prof;
 * `import 'node:http'` takes 96 ms of CPU against 34 for `require('node:http')`). node:tls (and node:https on
 * top of it) costs ~25 ms to load, which a config without TLS never needs. require() returns the same module
 * object and reads no export it is not asked for.
 */

export const nodeHttp = lazyRequire<typeof import('node:http')>('node:http');
export const nodeHttps = lazyRequire<typeof import('node:https')>('node:https');
export const nodeTls = lazyRequire<typeof import('node:tls')>('node:tls');
