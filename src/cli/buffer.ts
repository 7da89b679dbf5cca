import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { type BufferReport, inspectBuffers } from '../buffers/disk/inspect.ts';
import type { ComponentRegistry } from '../core/pipeline-config.ts';
import { loadWithComponents, resolveConfigPaths } from './run.ts';

/** `fluxo buffer …`: look at disk buffers without starting the pipeline. */
export function registerBufferCommands(program: Command, registry: ComponentRegistry): void {
  const buffer = program.command('buffer').description('look at the disk buffers of the sinks');
  buffer
    .command('inspect')
    .description(
      'print what each sink’s disk buffer holds (events not yet acknowledged by the sink, bytes, oldest age, damage) ' +
        'without starting the pipeline; safe while Fluxo runs',
    )
    .argument('[data_dir]', 'the data_dir to look in (default: the one of the config)')
    .addOption(
      new Option('-c, --config <file>', 'config whose data_dir to use when none is given')
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([]),
    )
    .option('--json', 'one JSON object per sink, one per line')
    .action(async (dataDir: string | undefined, opts: { config: string[]; json?: boolean }) => {
      process.exitCode = await inspectCommand(dataDir, opts, registry);
    });
}

async function inspectCommand(
  dataDirArg: string | undefined,
  opts: { config: string[]; json?: boolean },
  registry: ComponentRegistry,
): Promise<number> {
  let dataDir = dataDirArg;
  if (dataDir === undefined) {
    const loaded = await loadWithComponents(resolveConfigPaths(opts.config), registry);
    if (!loaded) return 1;
    dataDir = loaded.config.dataDir;
  }
  dataDir = resolve(dataDir);
  if (!existsSync(dataDir)) {
    process.stderr.write(`${dataDir}: no such directory\n`);
    return 1;
  }
  const reports = await inspectBuffers(dataDir);
  if (opts.json) {
    for (const r of reports) process.stdout.write(`${JSON.stringify(toJson(r))}\n`);
    return 0;
  }
  if (reports.length === 0) {
    process.stdout.write(`${dataDir}: no disk buffers (no sink with buffer.type: disk has run here)\n`);
    return 0;
  }
  process.stdout.write(formatReports(reports, Date.now()));
  return 0;
}

function toJson(r: BufferReport) {
  return {
    sink: r.sink,
    dir: r.dir,
    events: r.events,
    records: r.records,
    bytes: r.bytes,
    disk_bytes: r.diskBytes,
    segments: r.segments,
    oldest_unacked_at: r.oldestUnackedAt === undefined ? null : new Date(r.oldestUnackedAt).toISOString(),
    oldest_unacked_age_s: r.oldestUnackedAt === undefined ? null : Math.max(0, (Date.now() - r.oldestUnackedAt) / 1000),
    acked_id: r.ackedId,
    last_id: r.lastId,
    damage: r.damage.map((d) => ({
      segment: d.segment,
      offset: d.offset,
      kind: d.kind,
      reason: d.reason,
      bytes: d.bytes,
      lost_records: d.lostRecords ?? null,
      lost_ids: d.lostIds ?? null,
    })),
    ledger_problem: r.ledgerProblem ?? null,
    in_use_by_pid: r.inUseBy?.pid ?? null,
  };
}

export function formatReports(reports: BufferReport[], now: number): string {
  const rows = [['SINK', 'EVENTS', 'BYTES', 'ON DISK', 'SEGMENTS', 'OLDEST', 'STATE']];
  for (const r of reports) {
    rows.push([
      r.sink,
      r.events.toLocaleString('en-US'),
      formatBytes(r.bytes),
      formatBytes(r.diskBytes),
      String(r.segments),
      r.oldestUnackedAt === undefined ? '-' : formatAge(now - r.oldestUnackedAt),
      r.inUseBy ? `in use by pid ${r.inUseBy.pid}` : 'stopped',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (i === 0 || i === row.length - 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  for (const r of reports) {
    if (r.ledgerProblem)
      lines.push(`${r.sink}: ledger: ${r.ledgerProblem} (the next start replays every record on disk)`);
    for (const d of r.damage) {
      const ids =
        d.lostIds === undefined
          ? ''
          : d.lostIds[0] === d.lostIds[1]
            ? ` (id ${d.lostIds[0]})`
            : ` (ids ${d.lostIds[0]}-${d.lostIds[1]})`;
      const lost = d.lostRecords === undefined ? '' : `, ${d.lostRecords} record(s) lost${ids}`;
      const what =
        d.kind === 'torn_tail'
          ? r.inUseBy
            ? 'record being written (or torn)'
            : 'torn tail, truncated at the next start'
          : d.kind === 'missing_tail'
            ? 'records missing from the end of the log'
            : d.offset === 0
              ? 'damaged segment header; its records are read by their framing'
              : 'damaged, skipped at replay';
      lines.push(`${r.sink}: ${d.segment} offset ${d.offset}: ${d.reason} (${what}; ${d.bytes} bytes${lost})`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}
