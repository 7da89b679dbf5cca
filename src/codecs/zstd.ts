import * as zlib from 'node:zlib';

/**
 * zstd for formats that carry it (Parquet pages): node:zlib's where Node has it (≥ 22.15), else the
 * WebAssembly build of the reference library (Node 20), loaded on first use and once.
 */

export type Compress = (input: Uint8Array) => Uint8Array;
/** `outputLength`: the size the format says the data has once decompressed. */
export type Decompress = (input: Uint8Array, outputLength: number) => Uint8Array;

interface ZstdZlib {
  zstdCompressSync?: (input: Uint8Array, options: object) => Buffer;
  zstdDecompressSync?: (input: Uint8Array) => Buffer;
}
const native = zlib as unknown as ZstdZlib;

/** Whether this Node's node:zlib has zstd (22.15 / 23.8 and later), which some clients use directly. */
export const nodeHasZstd = typeof native.zstdCompressSync === 'function';

let wasm: Promise<typeof import('@bokuweb/zstd-wasm')> | undefined;
const loadWasm = () => {
  wasm ??= import('@bokuweb/zstd-wasm').then(async (lib) => {
    await lib.init();
    return lib;
  });
  return wasm;
};

/** A compressor at `level` (3 is zstd's default). */
export async function zstdCompressor(level: number): Promise<Compress> {
  const compress = native.zstdCompressSync;
  if (compress !== undefined) {
    const parameter = (zlib.constants as unknown as Record<string, number>).ZSTD_c_compressionLevel!;
    const options = { params: { [parameter]: level } };
    return (input) => compress(input, options);
  }
  const lib = await loadWasm();
  return (input) => lib.compress(input, level);
}

export async function zstdDecompressor(): Promise<Decompress> {
  const decompress = native.zstdDecompressSync;
  if (decompress !== undefined) return (input) => decompress(input);
  const lib = await loadWasm();
  // A frame without its content size is decompressed into a buffer of the size the caller knows.
  return (input, outputLength) => lib.decompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
}
