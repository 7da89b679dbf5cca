import { readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Fluxo runs its TypeScript through tsx, so a CPU profile's line and column numbers point into the code esbuild
 * generated, not into src/. tsx keeps every transform in its disk cache (`<tmpdir>/tsx-<uid>/<time>-<hash>`, a
 * JSON `{ code, map }`), so the positions can be mapped back with the source map it produced.
 */

interface CacheEntry {
  code: string;
  mtimeMs: number;
  lines?: Segment[][];
  mappings: string;
}

/** [generated column, source line, source column], 0-based; sources other than the first are not used by tsx. */
type Segment = [number, number, number];

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_VALUE = new Map([...BASE64].map((c, i) => [c, i]));

/** Decodes source map v3 `mappings` (Base64 VLQ) into segments per generated line. */
export function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let sourceLine = 0;
  let sourceColumn = 0;
  for (const lineText of mappings.split(';')) {
    const segments: Segment[] = [];
    let generatedColumn = 0;
    if (lineText.length > 0) {
      for (const segmentText of lineText.split(',')) {
        const values: number[] = [];
        let value = 0;
        let shift = 0;
        for (const c of segmentText) {
          const digit = BASE64_VALUE.get(c);
          if (digit === undefined) throw new Error(`bad VLQ character ${c}`);
          value += (digit & 31) << shift;
          if (digit & 32) {
            shift += 5;
          } else {
            values.push(value & 1 ? -(value >>> 1) : value >>> 1);
            value = 0;
            shift = 0;
          }
        }
        generatedColumn += values[0] ?? 0;
        if (values.length >= 4) {
          sourceLine += values[2]!;
          sourceColumn += values[3]!;
          segments.push([generatedColumn, sourceLine, sourceColumn]);
        }
      }
    }
    lines.push(segments);
  }
  return lines;
}

export class TsxSourceMaps {
  private readonly bySource = new Map<string, CacheEntry[]>();
  private readonly chosen = new Map<string, CacheEntry | null>();

  constructor(cacheDir = join(tmpdir(), `tsx-${userInfo().uid}`)) {
    let names: string[] = [];
    try {
      names = readdirSync(cacheDir);
    } catch {
      return; // no cache (TSX_DISABLE_CACHE, other tmpdir): positions stay unmapped
    }
    for (const name of names) {
      const path = join(cacheDir, name);
      try {
        const entry = JSON.parse(readFileSync(path, 'utf8')) as {
          code?: string;
          map?: { sources?: string[]; mappings?: string };
        };
        const source = entry.map?.sources?.[0];
        if (typeof entry.code !== 'string' || typeof entry.map?.mappings !== 'string' || !source) continue;
        const abs = isAbsolute(source) ? source : resolve(source);
        const list = this.bySource.get(abs) ?? [];
        list.push({ code: entry.code, mappings: entry.map.mappings, mtimeMs: statSync(path).mtimeMs });
        this.bySource.set(abs, list);
      } catch {
        // not a transform entry
      }
    }
  }

  /**
   * Picks the cache entry of `url` whose generated code has the profiled functions where the profile says
   * (the cache may hold several versions of a file edited between runs); the newest wins a tie.
   */
  private entryFor(
    url: string,
    frames: { functionName: string; lineNumber: number; columnNumber: number }[],
  ): CacheEntry | null {
    const cached = this.chosen.get(url);
    if (cached !== undefined) return cached;
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch {
      this.chosen.set(url, null);
      return null;
    }
    const candidates = [...(this.bySource.get(path) ?? [])].sort((a, b) => b.mtimeMs - a.mtimeMs);
    let best: CacheEntry | null = null;
    let bestScore = -1;
    for (const entry of candidates) {
      const codeLines = entry.code.split('\n');
      let score = 0;
      for (const f of frames) {
        const line = codeLines[f.lineNumber];
        if (line === undefined) {
          score -= 1;
          continue;
        }
        if (
          f.functionName &&
          line.slice(Math.max(0, f.columnNumber - 100), f.columnNumber + 1).includes(f.functionName)
        )
          score++;
      }
      if (score > bestScore) {
        best = entry;
        bestScore = score;
      }
    }
    this.chosen.set(url, best);
    return best;
  }

  /** 1-based source line of a profile position (0-based line and column in the generated code), if known. */
  sourceLine(
    url: string,
    lineNumber: number,
    columnNumber: number,
    framesOfUrl: { functionName: string; lineNumber: number; columnNumber: number }[],
  ): number | undefined {
    const entry = this.entryFor(url, framesOfUrl);
    if (!entry) return undefined;
    entry.lines ??= decodeMappings(entry.mappings);
    for (let l = lineNumber; l >= 0; l--) {
      const segments = entry.lines[l];
      if (!segments || segments.length === 0) continue;
      let found: Segment | undefined;
      for (const s of segments) {
        if (l === lineNumber && s[0] > columnNumber) break;
        found = s;
      }
      if (found) return found[1] + 1;
    }
    return undefined;
  }
}
