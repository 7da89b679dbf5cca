import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { redactedConfig } from '../api/config-view.ts';
import { ApiServer } from '../api/server.ts';
import type { GraphComponent } from '../api/snapshot.ts';
import { PipelineTelemetry } from '../api/telemetry.ts';
import { HttpAuthenticator } from '../codecs/http-auth.ts';
import { ConfigError, formatProblem } from '../config/errors.ts';
import { type LoadedConfig, loadConfigWithComponents } from '../config/load.ts';
import { acquireDataDirLock } from '../core/data-dir-lock.ts';
import { errorCode } from '../core/errors.ts';
import { createLogger, type LogFormat } from '../core/logger.ts';
import { PipelineMetrics } from '../core/metrics.ts';
import type { ComponentRegistry, PipelineConfig } from '../core/pipeline-config.ts';
import { Topology } from '../core/topology.ts';

/** The default config shipped with Fluxo, used when no -c is given and ./fluxo.yaml does not exist. */
export const EMBEDDED_DEFAULT_CONFIG = fileURLToPath(new URL('../../fluxo.yaml', import.meta.url));

export function resolveConfigPaths(paths: string[] | undefined): string[] {
  if (paths && paths.length > 0) return paths;
  return existsSync('fluxo.yaml') ? ['fluxo.yaml'] : [EMBEDDED_DEFAULT_CONFIG];
}

/** `fluxo run`'s exit codes (documented in `fluxo run --help`). */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
/** Stopped, but `shutdown_timeout` passed with events undelivered: they stay unacknowledged upstream. */
export const EXIT_UNDELIVERED = 3;

export interface RunOptions {
  config: string[];
  logLevel: string;
  logFormat: LogFormat;
}

/**
 * Loads the config files, and the components they name into `registry` (src/registry.ts loads them on
 * demand), parsing each file once; prints every problem and returns undefined when the config is invalid or
 * a component's code fails to load.
 */
export async function loadWithComponents(
  paths: string[],
  registry: ComponentRegistry,
  logger?: Logger,
): Promise<LoadedConfig | undefined> {
  try {
    return await loadConfigWithComponents(paths, registry);
  } catch (error) {
    if (error instanceof ConfigError) {
      if (logger) for (const p of error.problems) logger.error({ code: p.code }, formatProblem(p));
      else process.stderr.write(`${error.message}\n`);
    } else if (logger) {
      logger.error({ err: (error as Error).cause ?? error }, (error as Error).message);
    } else {
      process.stderr.write(`${(error as Error).message}\n`);
    }
    return undefined;
  }
}

/** `fluxo run`: starts the pipeline and keeps it running until a signal (or every source finished). */
export async function run(options: RunOptions, registry: ComponentRegistry, version: string): Promise<number> {
  const logger = createLogger({ level: options.logLevel as never, format: options.logFormat });
  const paths = resolveConfigPaths(options.config);
  const loaded = await loadWithComponents(paths, registry);
  if (!loaded) return EXIT_FAILED;
  for (const w of loaded.warnings) logger.warn({ code: w.code }, formatProblem(w));

  // The lock comes before anything opens a file or a socket: a second process on this data_dir must not get as far
  // as reading a single line.
  let releaseLock: () => void;
  try {
    releaseLock = acquireDataDirLock(loaded.config.dataDir);
  } catch (error) {
    logger.fatal({ code: errorCode(error) }, (error as Error).message);
    return EXIT_FAILED;
  }
  process.once('exit', releaseLock);
  try {
    return await runLocked(loaded, paths, registry, version, logger);
  } finally {
    releaseLock();
    process.off('exit', releaseLock);
  }
}

async function runLocked(
  loaded: LoadedConfig,
  paths: string[],
  registry: ComponentRegistry,
  version: string,
  logger: Logger,
): Promise<number> {
  const metrics = new PipelineMetrics();
  const topology = new Topology(loaded.config, registry, { logger, metrics });
  // Signals are handled from here on, before anything is started or printed: a SIGHUP or SIGTERM that arrives
  // while starting is queued, never lost (and never the default action, which would kill the process).
  const signals = new SignalHandling(topology, paths, registry, logger);

  let api: ApiServer | undefined;
  let apiUrl: string | undefined;
  if (loaded.config.api.enabled) {
    api = new ApiServer(
      loaded.config.api.address,
      {
        state: () => topology.state,
        metrics: () => topology.metricsText(),
        describe: () => ({
          version,
          state: topology.state,
          data_dir: topology.current.dataDir,
          ...topology.describe(),
        }),
        tap: (id, listener) => topology.tap(id, listener),
        telemetry: new PipelineTelemetry({
          registry: metrics.registry,
          graph: () => graphOf(topology),
          oldestUnsettled: () => topology.oldestUnsettled(),
          state: () => topology.state,
        }),
        config: () => redactedConfig(topology.current),
      },
      logger,
      HttpAuthenticator.of(loaded.config.api.auth),
    );
    try {
      apiUrl = await api.start();
    } catch (error) {
      logger.fatal({ code: errorCode(error) }, (error as Error).message);
      signals.detach();
      return EXIT_FAILED;
    }
  }
  try {
    await topology.start();
  } catch (error) {
    logger.fatal({ err: (error as Error).message, code: errorCode(error) }, 'pipeline failed to start');
    await topology.stop(1000).catch(() => {});
    await api?.stop();
    signals.detach();
    return EXIT_FAILED;
  }
  printBanner(version, paths, topology, apiUrl, loaded.config.api.auth?.strategy);
  topology.sourcesFinished()?.then(() => signals.requestStop('all sources finished'));
  const drained = await signals.running();
  await api?.stop();
  return drained ? EXIT_OK : EXIT_UNDELIVERED;
}

/** The running config's components and wiring, as the dashboard draws them. */
export function graphOf(topology: Topology): GraphComponent[] {
  const config = topology.current;
  const endpoints = new Map<string, string | undefined>();
  const d = topology.describe();
  for (const c of [...d.sources, ...d.transforms, ...d.sinks]) endpoints.set(c.id, c.endpoint);
  const out: GraphComponent[] = [];
  for (const s of config.sources.values())
    out.push({ id: s.id, kind: 'source', type: s.type, inputs: [], endpoint: endpoints.get(s.id) });
  for (const t of config.transforms.values()) out.push({ id: t.id, kind: 'transform', type: t.type, inputs: t.inputs });
  for (const s of config.sinks.values()) {
    const b = s.buffer;
    out.push({
      id: s.id,
      kind: 'sink',
      type: s.type,
      inputs: s.inputs,
      endpoint: endpoints.get(s.id),
      buffer:
        b.type === 'memory'
          ? { type: 'memory', max_events: b.maxEvents, max_bytes: b.maxBytes, when_full: b.whenFull }
          : { type: 'disk', max_bytes: b.maxSize, when_full: b.whenFull },
    });
  }
  return out;
}

/**
 * SIGTERM/SIGINT stop gracefully (a second one exits at once), SIGHUP reloads. Requests that arrive before the
 * pipeline runs wait for it; reloads run one at a time, and several SIGHUPs during a reload coalesce into one more.
 */
class SignalHandling {
  private stopReason: string | undefined;
  private stopped: Promise<boolean> | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private reloadQueued = false;
  private wake: (() => void) | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    if (this.stopReason !== undefined) {
      this.logger.warn({ signal }, 'second signal: exiting now without waiting for the drain');
      process.exit(130);
    }
    this.requestStop(signal);
  };
  private readonly onHup = () => {
    if (this.reloadQueued || this.stopReason !== undefined) return;
    this.reloadQueued = true;
    this.reloading = this.reloading.then(async () => {
      await this.started();
      this.reloadQueued = false;
      if (this.stopReason === undefined) await reload(this.topology, this.paths, this.registry, this.logger);
    });
  };

  constructor(
    private readonly topology: Topology,
    private readonly paths: string[],
    private readonly registry: ComponentRegistry,
    private readonly logger: Logger,
  ) {
    process.on('SIGTERM', this.onSignal);
    process.on('SIGINT', this.onSignal);
    process.on('SIGHUP', this.onHup);
  }

  requestStop(reason: string): void {
    if (this.stopReason !== undefined) return;
    this.stopReason = reason;
    this.wake?.();
  }

  /** Resolves once a stop was requested and the pipeline stopped: true when everything was delivered. */
  async running(): Promise<boolean> {
    if (this.stopReason === undefined) await new Promise<void>((resolve) => (this.wake = resolve));
    this.stopped ??= this.shutdown(this.stopReason!);
    const drained = await this.stopped;
    this.detach();
    return drained;
  }

  detach(): void {
    process.off('SIGTERM', this.onSignal);
    process.off('SIGINT', this.onSignal);
    process.off('SIGHUP', this.onHup);
  }

  private async started(): Promise<void> {
    while (this.topology.state === 'starting') await new Promise((r) => setTimeout(r, 10));
  }

  private async shutdown(reason: string): Promise<boolean> {
    await this.reloading;
    const topology = this.topology;
    this.logger.info({ reason, shutdown_timeout_ms: topology.current.shutdownTimeoutMs }, 'stopping: draining sinks');
    const drained = await topology.stop();
    this.logger.info(
      { drained },
      drained
        ? 'stopped: everything delivered'
        : `stopped: undelivered events stay unacknowledged (exit code ${EXIT_UNDELIVERED})`,
    );
    return drained;
  }
}

async function reload(topology: Topology, paths: string[], registry: ComponentRegistry, logger: Logger): Promise<void> {
  logger.info({ config: paths }, 'SIGHUP: reloading configuration');
  const loaded = await loadWithComponents(paths, registry, logger);
  if (!loaded) {
    logger.error('reload rejected: the new configuration is invalid; the running one stays');
    return;
  }
  warnUnreloadable(topology.current, loaded.config, logger);
  try {
    const summary = await topology.reload(loaded.config);
    logger.info(summary, 'configuration reloaded');
  } catch (error) {
    logger.error(
      { err: (error as Error).message, code: errorCode(error) },
      'reload failed; the running configuration stays',
    );
  }
}

function warnUnreloadable(current: PipelineConfig, next: PipelineConfig, logger: Logger): void {
  if (current.dataDir !== next.dataDir) logger.warn('data_dir changed: takes effect at the next restart');
  if (JSON.stringify(current.api) !== JSON.stringify(next.api))
    logger.warn('api changed: takes effect at the next restart');
}

function printBanner(
  version: string,
  paths: string[],
  topology: Topology,
  apiUrl: string | undefined,
  apiAuth: string | undefined,
): void {
  const d = topology.describe();
  const lines = [`Fluxo ${version} running with ${paths.join(', ')}`];
  for (const s of d.sources)
    lines.push(`  source ${s.id} (${s.type})${s.endpoint ? `: listening on ${s.endpoint}` : ''}`);
  for (const t of d.transforms) lines.push(`  transform ${t.id} (${t.type})`);
  for (const s of d.sinks) lines.push(`  sink ${s.id} (${s.type})${s.endpoint ? `: writing to ${s.endpoint}` : ''}`);
  lines.push(`  data_dir ${topology.current.dataDir}`);
  lines.push(
    apiUrl ? `  api ${apiUrl} (dashboard, /health, /metrics)${apiAuth ? `, ${apiAuth} auth` : ''}` : '  api disabled',
  );
  lines.push('Send SIGTERM or press Ctrl-C to stop (sinks drain first); SIGHUP reloads the configuration.');
  process.stderr.write(`${lines.join('\n')}\n`);
}
