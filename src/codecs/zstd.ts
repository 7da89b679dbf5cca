import * as zlib from 'node:zlib';

/**
 * zstd for formats that carry it (Parquet pages, Kafka record batches, HTTP bodies): node:zlib's where Node has it (≥ 22.15), else the
 * WebAssembly build of the reference library (Node 20), loaded on first use and once.
 */

export type Compress = (input: Uint8Array) => Uint8Array;
/** `outputLength`: the size the format says the data has once decompressed, when it says one. */
export type Decompress = (input: Uint8Array, outputLength?: number) => Uint8Array;

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

/** Whether a zstd frame header carries the frame's content size (RFC 8878, 3.1.1.1.1). */
function frameContentSizeKnown(frame: Uint8Array): boolean {
  if (frame.length < 5) return false;
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  return sizeFlag !== 0 || singleSegment === 1;
}

/**
 * A decompressor. The WebAssembly build sizes its output from the frame header; a frame without its content
 * size (streaming compressors, librdkafka's among them, may leave it out) gets `outputLength` when the caller
 * knows it (a Parquet page), else a buffer that doubles from 1 MiB up to MAX_UNKNOWN_SIZE.
 */
export async function zstdDecompressor(): Promise<Decompress> {
  const decompress = native.zstdDecompressSync;
  if (decompress !== undefined) return (input) => decompress(input);
  const lib = await loadWasm();
  return (input, outputLength) => {
    if (outputLength !== undefined) return lib.decompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
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
}

const asBuffer = (out: Uint8Array): Buffer => Buffer.from(out.buffer, out.byteOffset, out.byteLength);

/**
 * One-shot zstd at `level`, as Buffers, for a caller that cannot wait (a synchronous codec table) or wants
 * Buffers (an HTTP body); frames of any size, with or without their content size.
 */
export async function zstdCodec(
  level: number,
): Promise<{ compress: (input: Uint8Array) => Buffer; decompress: (input: Uint8Array) => Buffer }> {
  const [compress, decompress] = await Promise.all([zstdCompressor(level), zstdDecompressor()]);
  return { compress: (input) => asBuffer(compress(input)), decompress: (input) => asBuffer(decompress(input)) };
}
