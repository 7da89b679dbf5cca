import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export interface OutputCount {
  /** Newline-terminated lines in the visible files (gzip files decompressed). */
  lines: number;
  /** Bytes on disk of the visible files. */
  bytes: number;
  files: number;
  /** Files whose name starts with `.` (in progress): none may remain after a clean stop. */
  hidden_files: number;
  /** Bytes after the last newline of a file: a torn last line. */
  unterminated_bytes: number;
}

/** Counts lines under `dir` without holding a file in memory; `.gz` files are decompressed on the way. */
export async function countOutputLines(dir: string): Promise<OutputCount> {
  const result: OutputCount = { lines: 0, bytes: 0, files: 0, hidden_files: 0, unterminated_bytes: 0 };
  const walk = async (d: string): Promise<void> => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) {
        await walk(path);
        continue;
      }
      if (name.startsWith('.')) {
        result.hidden_files++;
        continue;
      }
      result.files++;
      result.bytes += st.size;
      let tail = 0;
      const count = async (source: AsyncIterable<Buffer>): Promise<void> => {
        for await (const chunk of source) {
          let i = chunk.indexOf(0x0a);
          if (i < 0) {
            tail += chunk.length;
            continue;
          }
          let lastNl = i;
          while (i >= 0) {
            result.lines++;
            lastNl = i;
            i = chunk.indexOf(0x0a, i + 1);
          }
          tail = chunk.length - lastNl - 1;
        }
      };
      if (name.endsWith('.gz')) await pipeline(createReadStream(path), createGunzip(), count);
      else await pipeline(createReadStream(path), count);
      result.unterminated_bytes += tail;
    }
  };
  await walk(dir);
  return result;
}
