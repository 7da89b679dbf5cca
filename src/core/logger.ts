import { type LevelWithSilent, type Logger, pino } from 'pino';

export type LogFormat = 'text' | 'json';

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * Fluxo's own log, on standard error so that standard output stays the console sink's. `text` is one
 * readable line per record (`2026-11-24T07:45:01.123Z INFO  message key=value`), `json` is pino's NDJSON.
 */
export function createLogger(options: { level?: LevelWithSilent; format?: LogFormat } = {}): Logger {
  const level = options.level ?? 'info';
  if (options.format === 'json')
    return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const out = pino.destination({ fd: 2, sync: true });
  return pino(
    { level, base: undefined },
    {
      write(line: string) {
        out.write(formatText(line));
      },
    },
  );
}

function formatText(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = new Date(record.time as number).toISOString();
  const level = (LEVEL_NAMES[record.level as number] ?? String(record.level)).padEnd(5);
  let text = `${time} ${level} ${String(record.msg ?? '')}`;
  for (const [k, v] of Object.entries(record)) {
    if (SKIP.has(k) || v === undefined) continue;
    text += ` ${k}=${typeof v === 'string' && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`;
  }
  return `${text}\n`;
}
