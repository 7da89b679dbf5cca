import { type Command, Option } from 'commander';
import type { ComponentSnapshot, LedgerDrops, LedgerRow, PipelineSnapshot } from '../api/snapshot.ts';
import { type ApiAuthOptions, addApiAuthOptions, apiAuthHeaders, unauthorizedHint } from './api-auth.ts';
import { apiBase, DEFAULT_API } from './tap.ts';

/**
 * `fluxo top`: the numbers of the dashboard in a terminal, refreshed with every snapshot of the API's
 * `GET /api/events` stream (one per second, one connection: no polling). Plain ANSI escapes, so it works over
 * SSH and in tmux; keys sort the table, `q` quits.
 */

export interface TopOptions extends ApiAuthOptions {
  api: string;
  once?: boolean;
}

type SortKey = 'graph' | 'name' | 'in' | 'out' | 'errors' | 'buffer' | 'latency';

const SORT_KEYS: Record<string, SortKey> = {
  g: 'graph',
  n: 'name',
  i: 'in',
  o: 'out',
  e: 'errors',
  b: 'buffer',
  l: 'latency',
};

const ESC = '\x1b[';
const ALT_SCREEN_ON = '\x1b[?1049h';
const ALT_SCREEN_OFF = '\x1b[?1049l';
const CURSOR_HIDE = '\x1b[?25l';
const CURSOR_SHOW = '\x1b[?25h';

function num(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return a > 0 && a < 10 && !Number.isInteger(n) ? n.toFixed(1) : String(Math.round(n));
}

function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n >= 60_000) return `${(n / 60_000).toFixed(1)}m`;
  if (n >= 1000) return `${(n / 1000).toFixed(1)}s`;
  return `${n >= 10 ? Math.round(n) : n.toFixed(1)}ms`;
}

function sortValue(c: ComponentSnapshot, key: SortKey): number | string {
  switch (key) {
    case 'name':
      return c.id;
    case 'in':
      return c.in_per_s;
    case 'out':
      return c.out_per_s;
    case 'errors':
      return c.errors_total;
    case 'buffer':
      return c.buffer?.fill ?? -1;
    case 'latency':
      return c.latency_p99_ms ?? -1;
    default:
      return 0;
  }
}

/** The screen for one snapshot, as lines at most `width` characters wide; `color` adds ANSI attributes. */
export function renderTop(
  s: PipelineSnapshot,
  view: { api: string; sort: SortKey; reverse: boolean; width: number; color: boolean; note?: string },
): string[] {
  const bold = (t: string) => (view.color ? `${ESC}1m${t}${ESC}0m` : t);
  const red = (t: string) => (view.color ? `${ESC}31;1m${t}${ESC}0m` : t);
  const inverse = (t: string) => (view.color ? `${ESC}7m${t}${ESC}0m` : t);
  const lines: string[] = [];
  const time = new Date(s.at).toISOString().slice(11, 19);
  lines.push(bold(`fluxo top  ${view.api}  ${s.state}  ${time}Z${view.note ? `  ${view.note}` : ''}`));
  lines.push(
    `sort: ${view.sort}${view.reverse ? ' (reversed)' : ''}   keys: g graph  n name  i in  o out  e errors  b buffer  l latency  r reverse  q quit`,
  );
  lines.push('');
  const columns: [string, number, 'l' | 'r'][] = [
    ['COMPONENT', 20, 'l'],
    ['KIND', 10, 'l'],
    ['TYPE', 12, 'l'],
    ['IN/S', 8, 'r'],
    ['OUT/S', 8, 'r'],
    ['ERRORS', 7, 'r'],
    ['RETRIES', 7, 'r'],
    ['BUFFER', 16, 'r'],
    ['PENDING', 8, 'r'],
    ['OLDEST', 7, 'r'],
    ['P50', 7, 'r'],
    ['P99', 7, 'r'],
  ];
  const cell = (text: string, [, w, align]: [string, number, 'l' | 'r']) => {
    const t = text.length > w ? `${text.slice(0, w - 1)}…` : text;
    return align === 'l' ? t.padEnd(w) : t.padStart(w);
  };
  const row = (values: string[]) => values.map((v, i) => cell(v, columns[i]!)).join(' ');
  const fit = (line: string) => (line.length > view.width ? line.slice(0, view.width) : line);
  const header = row(columns.map((c) => c[0]));
  lines.push(inverse(fit(view.color ? header.padEnd(Math.min(view.width, 200)) : header.trimEnd())));
  const components = [...s.components];
  if (view.sort !== 'graph') {
    components.sort((a, b) => {
      const x = sortValue(a, view.sort);
      const y = sortValue(b, view.sort);
      const order = x < y ? -1 : x > y ? 1 : 0;
      // Names ascend, numbers descend (biggest first) unless reversed.
      return (view.sort === 'name' ? order : -order) * (view.reverse ? -1 : 1);
    });
  } else if (view.reverse) components.reverse();
  for (const c of components) {
    const buffer = c.buffer
      ? `${(c.buffer.fill * 100).toFixed(0)}% ${num(c.buffer.events)} ${c.buffer.type === 'disk' ? 'D' : 'M'}`
      : '';
    const line = fit(
      row([
        c.id,
        c.kind === 'dead_letter' ? 'dead-ltr' : c.kind,
        c.type,
        num(c.in_per_s),
        num(c.out_per_s),
        num(c.errors_total),
        c.kind === 'sink' ? num(c.retries_total) : '',
        buffer,
        c.kind === 'source' ? num(c.pending_acks ?? 0) : '',
        c.kind === 'source' ? ms(c.oldest_unacked_ms) : '',
        c.kind === 'sink' ? ms(c.latency_p50_ms) : '',
        c.kind === 'sink' ? ms(c.latency_p99_ms) : '',
      ]),
    );
    lines.push(c.stalled ? red(`${line}  STALLED`) : c.errors_total > 0 ? red(line) : line);
  }
  lines.push('');
  lines.push(
    bold('loss ledger: accepted = acknowledged + in flight + not acknowledged (dead-lettered count as settled)'),
  );
  for (const l of s.ledger) {
    lines.push(
      fit(
        `  ${l.source.padEnd(20)} accepted ${num(l.accepted).padStart(7)}  acknowledged ${num(l.acknowledged).padStart(7)}  ` +
          `in flight ${num(l.in_flight).padStart(6)}  not acked ${num(l.not_acknowledged).padStart(5)}  ` +
          `dead-lettered ${num(l.dead_lettered).padStart(5)}  dropped ${num(l.dropped).padStart(5)}${dropCauses(l)}`,
      ),
    );
  }
  return lines;
}

const DROP_CAUSES: [keyof LedgerDrops, string][] = [
  ['buffer_full', 'buffer full'],
  ['throttled', 'throttled'],
  ['udp_backlog', 'udp backlog'],
  ['udp_kernel', 'udp kernel'],
  ['partial', 'partial'],
];

/** ` (buffer full 12, udp kernel 3)`: the non-zero causes of a ledger row's drops; '' without drops. */
function dropCauses(l: LedgerRow): string {
  // An older server's snapshot has no split.
  const parts = DROP_CAUSES.filter(([k]) => (l.drops?.[k] ?? 0) > 0).map(([k, name]) => `${name} ${num(l.drops[k])}`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** Reads `GET /api/events` and calls `onSnapshot` for each; resolves when the stream ends, rejects on failure. */
async function readEvents(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  onSnapshot: (s: PipelineSnapshot) => void,
): Promise<void> {
  const res = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' }, signal });
  if (res.status !== 200 || !res.body) {
    const text = (await res.text().catch(() => '')).trim();
    throw new TopError(`${res.status} from ${url}: ${text || res.statusText}`, res.status === 401);
  }
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let end = pending.indexOf('\n\n');
    while (end >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (event === 'snapshot' && data) onSnapshot(JSON.parse(data) as PipelineSnapshot);
      end = pending.indexOf('\n\n');
    }
  }
}

class TopError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
  ) {
    super(message);
  }
}

/** Runs `fluxo top` until `q`, Ctrl-C or (with --once) the first snapshot; resolves with the exit code. */
export async function top(options: TopOptions, stdin: NodeJS.ReadStream, stdout: NodeJS.WriteStream): Promise<number> {
  const base = apiBase(options.api);
  const headers = apiAuthHeaders(options);
  const url = `${base}/api/events`;
  const abort = new AbortController();
  const interactive = !options.once && stdout.isTTY === true;
  let sort: SortKey = 'graph';
  let reverse = false;
  let latest: PipelineSnapshot | undefined;
  let note = '';
  let exitCode = 0;

  const draw = () => {
    if (!latest) {
      if (interactive) stdout.write(`${ESC}H${ESC}2Jfluxo top: connecting to ${base}… ${note}\n`);
      return;
    }
    const lines = renderTop(latest, {
      api: base,
      sort,
      reverse,
      width: stdout.columns ?? 160,
      color: interactive,
      note,
    });
    const height = stdout.rows ?? lines.length;
    if (interactive) stdout.write(`${ESC}H${ESC}2J${lines.slice(0, height).join('\r\n')}`);
    else stdout.write(`${lines.join('\n')}\n`);
  };

  const quit = () => abort.abort();
  const onKey = (data: Buffer) => {
    for (const ch of data.toString('utf8')) {
      if (ch === 'q' || ch === '\x03' || ch === 'Q') return quit();
      if (ch === 'r') reverse = !reverse;
      else if (SORT_KEYS[ch]) {
        sort = SORT_KEYS[ch]!;
        reverse = false;
      } else continue;
      draw();
    }
  };
  const onResize = () => draw();
  if (interactive) {
    stdout.write(`${ALT_SCREEN_ON}${CURSOR_HIDE}`);
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
    stdout.on('resize', onResize);
  }
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  try {
    draw();
    while (!abort.signal.aborted) {
      try {
        await readEvents(url, headers, abort.signal, (s) => {
          latest = s;
          note = '';
          draw();
          if (options.once) quit();
        });
        note = '(stream ended, reconnecting)';
      } catch (error) {
        if (abort.signal.aborted) break;
        const message =
          error instanceof TopError
            ? error.message
            : `cannot reach the Fluxo API at ${base} (${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message})`;
        if ((error instanceof TopError && error.fatal) || !interactive) {
          exitCode = 1;
          note = message;
          abort.abort();
          if (interactive) stdout.write(`${ALT_SCREEN_OFF}${CURSOR_SHOW}`);
          process.stderr.write(
            `fluxo top: ${message}${error instanceof TopError && error.fatal ? unauthorizedHint(options) : ''}\n`,
          );
          return exitCode;
        }
        note = `(${message}; retrying)`;
      }
      draw();
      if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
    return exitCode;
  } finally {
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
    if (interactive) {
      stdin.off('data', onKey);
      stdout.off('resize', onResize);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      if (exitCode === 0) stdout.write(`${CURSOR_SHOW}${ALT_SCREEN_OFF}`);
    }
  }
}

export function registerTopCommand(program: Command): void {
  const command = program
    .command('top')
    .description("a live terminal view of a running Fluxo's components: rates, buffers, errors, latency")
    .addOption(new Option('--api <url>', 'the API of the running Fluxo (its api.address)').default(DEFAULT_API));
  addApiAuthOptions(command)
    .addOption(new Option('--once', 'print one snapshot as plain text and exit (scripts, no terminal needed)'))
    .addHelpText(
      'after',
      `
Keys: g graph order, n name, i in/s, o out/s, e errors, b buffer fill, l p99 latency (biggest first),
r reverse, q quit. A red line has errors; STALLED marks a sink that holds events and delivers none.

Examples:
  fluxo top                                   the local Fluxo on 127.0.0.1:8686
  fluxo top --api http://10.0.0.5:8686 --token "$FLUXO_API_TOKEN"
  fluxo top --once                            one table on standard output`,
    )
    .action(async (opts: TopOptions) => {
      process.exitCode = await top(opts, process.stdin, process.stdout);
    });
}
