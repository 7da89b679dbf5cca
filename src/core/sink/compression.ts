import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { z } from 'zod';
import { FluxoError } from '../errors.ts';

/** Compression of a write's body, with one meaning in every sink that takes it. */
export type Compression = 'none' | 'gzip' | 'zstd';

type Compressor = (data: Buffer) => Promise<Buffer>;

const gzip = promisify(zlib.gzip) as Compressor;
// zlib has zstd from Node 22.15 / 23.8; on older runtimes a sink configured with it fails at start, by name.
const zstdCompress = (zlib as { zstdCompress?: unknown }).zstdCompress;
const zstd: Compressor | undefined =
  typeof zstdCompress === 'function' ? (promisify(zstdCompress) as Compressor) : undefined;

const MEANING: Record<Compression, string> = {
  none: '`none`',
  gzip: '`gzip`',
  zstd: '`zstd` (Node.js ≥ 22.15)',
};

/** The `compression` option of a sink: the algorithms its destination takes, and its default. */
export function compressionOption<const C extends readonly Compression[]>(
  algorithms: C,
  defaults: { default: C[number]; describe?: string },
) {
  return z
    .enum(algorithms as unknown as [C[number], ...C[number][]])
    .default(defaults.default)
    .describe(defaults.describe ?? `Compression of each write: ${algorithms.map((a) => MEANING[a]).join(', ')}.`);
}

/** Checks at build time that this runtime can compress with `algorithm`. */
export function checkCompression(algorithm: Compression, what: string): void {
  if (algorithm === 'zstd' && zstd === undefined) {
    throw new FluxoError(
      'FLUXO_SINK_COMPRESSION_UNAVAILABLE',
      `${what}: compression zstd needs Node.js 22.15 or later (this is ${process.version}); use gzip or upgrade`,
    );
  }
}

/** Compresses a body off the event loop (zlib's thread pool); `none` returns it as it is. */
export function compress(data: Buffer, algorithm: Compression): Promise<Buffer> {
  if (algorithm === 'none') return Promise.resolve(data);
  if (algorithm === 'gzip') return gzip(data);
  if (zstd === undefined) checkCompression(algorithm, 'compress');
  return zstd!(data);
}

/** The HTTP `Content-Encoding` of an algorithm (undefined for `none`). */
export function contentEncoding(algorithm: Compression): string | undefined {
  return algorithm === 'none' ? undefined : algorithm;
}
