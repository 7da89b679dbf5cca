import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { z } from 'zod';
import { zstdCodec } from '../../codecs/zstd.ts';

/** Compression of a write's body, with one meaning in every sink that takes it. */
export type Compression = 'none' | 'gzip' | 'zstd';

type Compressor = (data: Buffer) => Promise<Buffer>;

const gzip = promisify(zlib.gzip) as Compressor;
// zlib has zstd from Node 22.15 / 23.8, and compresses in its thread pool. Before, the reference library built
// to WebAssembly (codecs/zstd.ts, loaded on first use) compresses on the event loop: a body of a few MiB
// takes milliseconds there, and Node 20 is past its end of life.
const zstdCompress = (zlib as { zstdCompress?: unknown }).zstdCompress;
let wasmZstd: ReturnType<typeof zstdCodec> | undefined;
const zstd: Compressor =
  typeof zstdCompress === 'function'
    ? (promisify(zstdCompress) as Compressor)
    : async (data) => {
        wasmZstd ??= zstdCodec(3);
        return (await wasmZstd).compress(data);
      };

const MEANING: Record<Compression, string> = {
  none: '`none`',
  gzip: '`gzip`',
  zstd: '`zstd`',
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

/** Compresses a body (off the event loop in zlib's thread pool, but zstd before Node 22.15); `none` returns it as it is. */
export function compress(data: Buffer, algorithm: Compression): Promise<Buffer> {
  if (algorithm === 'none') return Promise.resolve(data);
  if (algorithm === 'gzip') return gzip(data);
  return zstd(data);
}

/** The HTTP `Content-Encoding` of an algorithm (undefined for `none`). */
export function contentEncoding(algorithm: Compression): string | undefined {
  return algorithm === 'none' ? undefined : algorithm;
}
