import * as zlib from 'node:zlib';

/**
 * zstd for formats that carry it (Parquet pages, Kafka record batches, HTTP bodies): node:zlib's where Node has it (≥ 22.15), else the
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

/**
 * Largest frame of unknown content size decompressed: the buffer doubles from 1 MiB up to it, and WebAssembly
 * memory, once grown, stays. A Kafka batch is at most the broker's message.max.bytes (1 MiB by default).
 */
const MAX_UNKNOWN_SIZE = 64 * 1024 * 1024;
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * One-shot zstd for a caller that cannot wait (a synchronous codec table), at `level`; decompression takes frames
 * with or without their content size (streaming compressors, librdkafka's among them, may leave it out).
 * node:zlib's where Node has it, else the WebAssembly build, loaded here.
 */
export async function zstdCodec(
  level: number,
): Promise<{ compress: Compress; decompress: (input: Uint8Array) => Uint8Array }> {
  const compress = await zstdCompressor(level);
  const nodeDecompress = native.zstdDecompressSync;
  if (nodeDecompress !== undefined) return { compress, decompress: (input) => nodeDecompress(input) };
  const lib = await loadWasm();
  const decompress = (input: Uint8Array): Uint8Array => {
    if (input.length < 4 || Buffer.from(input.buffer, input.byteOffset, 4).readUInt32LE(0) !== ZSTD_MAGIC) {
      throw new Error('not a zstd frame (bad magic number)');
    }
    for (let size = Math.max(1 << 20, input.length * 8); ; size *= 2) {
      try {
        return lib.decompress(input, { defaultHeapSize: size });
      } catch (error) {
        // A frame that says its size was given that much room: its failure is the frame's.
        if (size >= MAX_UNKNOWN_SIZE || frameContentSizeKnown(input)) throw error;
      }
    }
  };
  return { compress, decompress };
}

/** Whether a zstd frame header carries the frame's content size (RFC 8878, 3.1.1.1.1). */
function frameContentSizeKnown(frame: Uint8Array): boolean {
  if (frame.length < 5) return false;
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  return sizeFlag !== 0 || singleSegment === 1;
}

export async function zstdDecompressor(): Promise<Decompress> {
  const decompress = native.zstdDecompressSync;
  if (decompress !== undefined) return (input) => decompress(input);
  const lib = await loadWasm();
  // A frame without its content size is decompressed into a buffer of the size the caller knows.
  return (input, outputLength) => lib.decompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
}
