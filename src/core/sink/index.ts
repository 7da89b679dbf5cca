/**
 * The sink kit: what a sink file composes so that it holds only destination logic. See "Write a sink" in
 * docs/architecture.md.
 */
export { authorizationHeader, type ClientAuth, clientAuthOption, redactUrl } from './auth.ts';
export { type Compression, compress, compressionOption, contentEncoding } from './compression.ts';
export {
  type EncodedLines,
  type Encoding,
  type EncodingCodec,
  encodingOf,
  encodingOptions,
  pickLines,
  UNENCODABLE_REASON,
} from './encoding.ts';
export type { SendResult, SinkRequest } from './request.ts';
export { Semaphore } from './semaphore.ts';
