import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ApiAuthOptions, addApiAuthOptions, apiAuthHeaders, unauthorizedHint } from './api-auth.ts';

/**
 * `fluxo tap COMPONENT`: the live events of one component of a running Fluxo, from its API's
 * `GET /tap?component=ID&limit=N&sample=K`, as NDJSON on standard output: one `{component, output, event}`
 * line per event, ready for `jq`. The stream ends after `--limit` events (or Ctrl-C); the server's closing
 * `{tap_end: true, sent, skipped}` line is summarised on standard error so standard output stays pure events.
 * Tapping never slows the pipeline: the server skips events rather than wait for a slow reader.
 */

export interface TapOptions extends ApiAuthOptions {
  api: string;
  limit: number;
  sample: number;
}

export const DEFAULT_API = process.env.FLUXO_API ?? 'http://127.0.0.1:8686';

/** `127.0.0.1:8686`, `http://host:8686/` → `http://host:8686`. */
export function apiBase(api: string): string {
  const withScheme = /^https?:\/\//.test(api) ? api : `http://${api}`;
  return withScheme.replace(/\/+$/, '');
}

// Commander prints an InvalidArgumentError as a usage error (exit 1); any other error would escape as a crash.
function positiveInt(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer, found "${value}"`);
    }
    return n;
  };
}

/** Streams the tap to `out`; resolves with the exit code. `signal` stops it early (Ctrl-C). */
export async function streamTap(
  component: string,
  options: TapOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  signal: AbortSignal,
): Promise<number> {
  const base = apiBase(options.api);
  const url = `${base}/tap?component=${encodeURIComponent(component)}&limit=${options.limit}&sample=${options.sample}`;
  let response: Response;
  try {
    response = await fetch(url, { signal, headers: apiAuthHeaders(options) });
  } catch (error) {
    if (signal.aborted) return 0;
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    err.write(
      `fluxo tap: cannot reach the Fluxo API at ${base} (${cause}); is fluxo running, and is --api its api.address?\n`,
    );
    return 1;
  }
  if (response.status !== 200 || !response.body) {
    const text = (await response.text().catch(() => '')).trim();
    const hint = response.status === 401 ? unauthorizedHint(options) : '';
    err.write(`fluxo tap: ${response.status} from ${base}/tap: ${text || response.statusText}${hint}\n`);
    return 1;
  }
  err.write(
    `fluxo tap: ${component} at ${base} (up to ${options.limit} events, every ${options.sample}${options.sample === 1 ? '' : 'th'}); Ctrl-C stops\n`,
  );
  const decoder = new TextDecoder();
  let pending = '';
  let ended = false;
  const handleLine = (line: string) => {
    if (line === '') return;
    if (line.startsWith('{"tap_end"')) {
      ended = true;
      try {
        const end = JSON.parse(line) as { sent?: number; skipped?: number };
        err.write(`fluxo tap: ${end.sent ?? 0} events shown, ${end.skipped ?? 0} skipped while the output was busy\n`);
      } catch {
        err.write(`${line}\n`);
      }
      return;
    }
    out.write(`${line}\n`);
  };
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        handleLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
    }
    handleLine(pending + decoder.decode());
  } catch (error) {
    if (signal.aborted) return 0;
    err.write(`fluxo tap: the stream broke: ${(error as Error).message}\n`);
    return 1;
  }
  if (!ended && !signal.aborted) {
    err.write('fluxo tap: the stream ended without its closing line (Fluxo stopped or reloaded the component)\n');
  }
  return 0;
}

export function registerTapCommand(program: Command): void {
  const command = program
    .command('tap')
    .description("stream a running Fluxo's live events of one component as NDJSON (sampled, limited)")
    .argument('<component>', 'component id (source, transform or sink) as in the config')
    .addOption(new Option('--api <url>', 'the Fluxo API (api.address), or $FLUXO_API').default(DEFAULT_API));
  addApiAuthOptions(command)
    .addOption(
      new Option('--limit <n>', 'stop after this many events (at most 10000)')
        .argParser(positiveInt('--limit'))
        .default(100),
    )
    .addOption(new Option('--sample <k>', 'show every k-th event').argParser(positiveInt('--sample')).default(1))
    .addHelpText(
      'after',
      `
Examples:
  fluxo tap access --limit 20                    the next 20 events out of transform "access"
  fluxo tap by_status --sample 100 | jq .event   every 100th event of a route, all outputs
  fluxo tap master --api 10.0.0.5:8686 --token "$FLUXO_API_TOKEN"
                                                 what sink "master" receives on another host (api.auth)`,
    )
    .action(async (component: string, opts: TapOptions) => {
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // `fluxo tap x | head` closes our stdout: stop quietly instead of dying on EPIPE.
      process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EPIPE') controller.abort();
      });
      process.exitCode = await streamTap(component, opts, process.stdout, process.stderr, controller.signal);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    });
}
