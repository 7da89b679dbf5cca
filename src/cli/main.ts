import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { configJsonSchema } from '../config/schema.ts';
import { componentRegistry } from '../registry.ts';
import { loadWithComponents, resolveConfigPaths, run } from './run.ts';

/** Components load when a config names them (`fluxo schema` loads all). */
const registry = componentRegistry();

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const collect = (value: string, previous: string[]) => [...previous, value];
const configOption = () =>
  new Option('-c, --config <file>', 'config file (YAML or JSON); repeat to merge several')
    .argParser(collect)
    .default([]);

const program = new Command()
  .name('fluxo')
  .description('Fluxo: a log and event data collector that loses no line.')
  .version(pkg.version, '-V, --version')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  fluxo run                          run ./fluxo.yaml (or the embedded default config)
  fluxo run -c base.yaml -c prod.yaml  merge two files, later ones win for global settings
  fluxo validate -c fluxo.yaml       check a config: every problem with file, line and key
  fluxo schema > fluxo.schema.json   JSON Schema for editor completion`,
  );

program
  .command('run')
  .description('run the pipeline until SIGTERM/SIGINT; SIGHUP reloads the config')
  .addOption(configOption())
  .addOption(
    new Option('--log-level <level>', 'log level')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'silent'])
      .default('info'),
  )
  .addOption(
    new Option('--log-format <format>', 'log format on standard error').choices(['text', 'json']).default('text'),
  )
  .addHelpText(
    'after',
    `
Exit codes:
  0    stopped, everything delivered (or durably buffered)
  1    did not start: invalid config, data_dir in use by another fluxo, a listener or sink failed to start
  3    stopped, but shutdown_timeout passed with events undelivered; they were not acknowledged, so the
       senders, file checkpoints or disk buffers still have them and a restart resumes them
  130  a second SIGTERM/SIGINT: exited at once without waiting for the drain`,
  )
  .action(async (opts: { config: string[]; logLevel: string; logFormat: 'text' | 'json' }) => {
    process.exitCode = await run(opts, registry, pkg.version);
  });

program
  .command('validate')
  .description('check config files and exit 0 when valid, 1 with every problem listed')
  .addOption(configOption())
  .action(async (opts: { config: string[] }) => {
    const paths = resolveConfigPaths(opts.config);
    const loaded = await loadWithComponents(paths, registry);
    if (!loaded) {
      process.exitCode = 1;
      return;
    }
    for (const w of loaded.warnings)
      process.stderr.write(`warning: ${w.file}:${w.line}:${w.column}: ${w.path}: ${w.message}\n`);
    const c = loaded.config;
    process.stdout.write(
      `${paths.join(', ')}: valid (${c.sources.size} sources, ${c.transforms.size} transforms, ${c.sinks.size} sinks)\n`,
    );
  });

program
  .command('schema')
  .description('print the JSON Schema of the config file')
  .action(async () => {
    await registry.loadAll?.();
    process.stdout.write(`${JSON.stringify(configJsonSchema(registry), null, 2)}\n`);
  });

/**
 * The other commands, imported only when they run (or for the help, which lists them all): `fluxo run` does not
 * pay for the simulator, the buffer inspector, or the test runner's CEL and schemas (~0.1–0.3 s of CPU each).
 */
const LAZY_COMMANDS: Record<string, () => Promise<void>> = {
  simulate: async () => (await import('./simulate.ts')).registerSimulateCommand(program),
  buffer: async () => (await import('./buffer.ts')).registerBufferCommands(program, registry),
  test: async () => (await import('./test-command.ts')).registerTestCommand(program, registry),
  tap: async () => (await import('./tap.ts')).registerTapCommand(program),
  top: async () => (await import('./top.ts')).registerTopCommand(program),
};
const invoked = process.argv[2];
if (invoked !== undefined && Object.hasOwn(LAZY_COMMANDS, invoked)) await LAZY_COMMANDS[invoked]!();
else if (!['run', 'validate', 'schema'].includes(invoked ?? '')) {
  for (const register of Object.values(LAZY_COMMANDS)) await register();
}

await program.parseAsync(process.argv);
