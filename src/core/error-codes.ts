/**
 * Every code a FluxoError (or a config problem) can carry, with what it means and what the user should do.
 * docs/errors.md is generated from this object (`npm run docs`), and a unit test checks that every
 * `'FLUXO_…'` literal in src/ is catalogued here and every entry is still used.
 *
 * A code is a promise: users grep logs and write alerts for it. Add codes, reword their text, but do not
 * rename or reuse one.
 */
export type ErrorArea = 'config' | 'source' | 'transform' | 'sink' | 'buffer' | 'api' | 'cli';

export interface ErrorCodeEntry {
  /** Where the error arises. */
  readonly area: ErrorArea;
  /** What it means, in the user's words. */
  readonly meaning: string;
  /** What the user should do about it. */
  readonly action: string;
}

export const errorCatalogue = {
  // --- config: reported by `fluxo validate`, `fluxo run` and a SIGHUP reload, with file, line and key ---
  FLUXO_CONFIG_INVALID: {
    area: 'config',
    meaning:
      'The configuration was rejected. The message lists every problem found, each with its own code below; ' +
      'a component can also raise it when its options contradict each other (e.g. a parse transform whose ' +
      '`format` needs a setting that is missing).',
    action: 'Fix each listed problem, then check with `fluxo validate -c <file>` before running again.',
  },
  FLUXO_CONFIG_UNREADABLE: {
    area: 'config',
    meaning: 'A config file given with `-c` (or ./fluxo.yaml) cannot be read: it does not exist or is not readable.',
    action: 'Check the path (relative paths are read from the current directory) and the file permissions.',
  },
  FLUXO_CONFIG_SYNTAX: {
    area: 'config',
    meaning: 'The file is not valid YAML (or JSON) at the line shown.',
    action:
      'Fix the syntax at that line: indentation, an unclosed quote or bracket, a tab used for indentation. ' +
      'Quote values that start with `{`, `[`, `*`, `&` or contain `: `.',
  },
  FLUXO_CONFIG_MISSING_ENV: {
    area: 'config',
    meaning: 'The config uses `${VAR}` but the environment variable VAR is not set.',
    action:
      'Set the variable in the environment of Fluxo, or give a default in the config: `${VAR:-default}`. ' +
      'Write `$${VAR}` for a literal `${VAR}`.',
  },
  FLUXO_CONFIG_DUPLICATE_ID: {
    area: 'config',
    meaning:
      'Two components have the same id, or a map has the same key twice. Ids are unique across sources, ' +
      'transforms and sinks, and across merged files.',
    action: 'Rename one of them (and the `inputs` that refer to it).',
  },
  FLUXO_CONFIG_INVALID_ID: {
    area: 'config',
    meaning:
      'A component id uses characters other than letters, digits, `_` and `-`, or is a reserved id ' +
      '(`dead_letter`).',
    action: 'Rename the component, e.g. `web-logs` or `web_logs`.',
  },
  FLUXO_CONFIG_UNKNOWN_KEY: {
    area: 'config',
    meaning: 'A key is not an option of the component (or of the top level); often a typo or a misplaced option.',
    action:
      'Use the suggested name ("did you mean …"), or look the component up in docs/components.md ' +
      '(`fluxo schema` gives the same as JSON Schema for editor completion).',
  },
  FLUXO_CONFIG_MISSING_KEY: {
    area: 'config',
    meaning: 'A required option is missing, e.g. `type` of a component or `path` of a file sink.',
    action: 'Add the key named in the message; docs/components.md marks required options.',
  },
  FLUXO_CONFIG_INVALID_TYPE: {
    area: 'config',
    meaning: 'A value has the wrong kind: a string where a number is expected, a single value where a list is, …',
    action:
      'Write the value in the expected form shown in the message (sizes like `64MiB`, durations like `5s`, ' +
      'lists like `[a, b]`).',
  },
  FLUXO_CONFIG_INVALID_VALUE: {
    area: 'config',
    meaning:
      'A value has the right kind but is not allowed: not one of the listed choices, out of range, an invalid ' +
      'address, regex, CEL expression, time zone or timestamp format.',
    action: 'Use one of the values the message lists, or fix the value as it explains.',
  },
  FLUXO_CONFIG_UNKNOWN_TYPE: {
    area: 'config',
    meaning: 'The `type` of a component names no source, transform or sink this Fluxo knows.',
    action:
      'Pick one of the available types the message lists. A source type under `sinks:` (or the reverse) belongs ' +
      'in the other section.',
  },
  FLUXO_CONFIG_UNKNOWN_INPUT: {
    area: 'config',
    meaning:
      'An entry of `inputs` names no source or transform (or a sink, or the component itself, or an output a ' +
      'route does not have).',
    action: 'Fix the id in `inputs`; a route output is written `<route id>.<output name>`.',
  },
  FLUXO_CONFIG_CYCLE: {
    area: 'config',
    meaning: 'The `inputs` of transforms form a loop, so events would circle forever.',
    action: 'Break the cycle shown in the message: the pipeline must flow from sources to sinks without coming back.',
  },
  FLUXO_CONFIG_UNUSED_SOURCE: {
    area: 'config',
    meaning: 'A warning, not an error: a source is not an input of any transform or sink, so its events are discarded.',
    action: 'Add the source to the `inputs` of a transform or sink, or remove it.',
  },
  FLUXO_CONFIG_EMPTY: {
    area: 'config',
    meaning:
      'The merged configuration has no source or no sink: it would read nothing, or discard everything it reads. ' +
      'Often a wrong `-c` file, or a section indented under another.',
    action: 'Declare at least one source under `sources:` and one sink under `sinks:` that reads from it.',
  },
  FLUXO_CONFIG_ADDRESS_CONFLICT: {
    area: 'config',
    meaning:
      'Two listeners (sources, or a source and `api.address`) use one port with one transport (TCP or UDP), ' +
      'on the same host or with one on 0.0.0.0 / [::]; the second would fail to start with EADDRINUSE. A TCP ' +
      'and a UDP listener may share a port (syslog does); port 0 never conflicts.',
    action: 'Give one of the two components named in the message another port (0 picks a free one).',
  },

  // --- sources ---
  FLUXO_SOURCE_INVALID_OPTIONS: {
    area: 'source',
    meaning:
      'The options of a source are valid one by one but do not work together (e.g. `format: lines` with no `lines`).',
    action: 'Fix the options as the message explains.',
  },
  FLUXO_SOURCE_LISTEN: {
    area: 'source',
    meaning:
      'A network source cannot listen on its `address`: the port is in use (often another Fluxo), the address is ' +
      'not one of this host, or a port below 1024 needs privileges.',
    action:
      'Stop the other process or choose another `address`; use 0.0.0.0 (or a host address) only where the port ' +
      'must be reachable from other hosts.',
  },
  FLUXO_SYSLOG_TLS_OVER_UDP: {
    area: 'source',
    meaning: 'A syslog source has `tls` with `mode: udp`; syslog over DTLS is not supported.',
    action: 'Use `mode: tcp` for TLS (port 6514 by convention), or remove the `tls` block.',
  },
  FLUXO_HTTP_MALFORMED_BODY: {
    area: 'source',
    meaning:
      'An http source received a body it cannot decode (invalid JSON or NDJSON, or JSON that is not an event or ' +
      'a list of events). The request is answered 400 and nothing of it is accepted.',
    action:
      'Fix the sender: send one JSON object, a JSON array of objects, NDJSON (one object per line) or plain text ' +
      'with the matching Content-Type.',
  },
  FLUXO_OTLP_MALFORMED: {
    area: 'source',
    meaning:
      'An otlp source received a body that is not an ExportLogsServiceRequest (protobuf or JSON). The request is ' +
      'answered 400.',
    action:
      'Check the exporter: it must send logs (not traces or metrics) to /v1/logs with Content-Type ' +
      'application/x-protobuf or application/json.',
  },
  FLUXO_DECODED_BODY_TOO_LARGE: {
    area: 'source',
    meaning:
      'An http or otlp request body inflates (gzip) to more than `max_decoded_body_bytes`. Decompression stops at ' +
      'the limit, the request is answered 413 and nothing of it is accepted (a typical gzip bomb).',
    action:
      'If the sender is legitimate, send smaller requests (most exporters have a batch size option) or raise ' +
      '`max_decoded_body_bytes` on the source.',
  },
  FLUXO_TOO_MANY_EVENTS: {
    area: 'source',
    meaning:
      'An http or otlp request holds more events (lines, array elements, log records) than ' +
      '`max_events_per_request`. It is answered 413 and nothing of it is accepted.',
    action:
      'Send smaller batches (e.g. the max export batch size of the OTLP exporter), or raise `max_events_per_request`.',
  },
  FLUXO_NESTING_TOO_DEEP: {
    area: 'source',
    meaning:
      'An http or otlp request holds a JSON value (or OTLP AnyValue) nested deeper than `max_nesting_depth`; no ' +
      'sink could encode it again, so the request is answered 400 and nothing of it is accepted.',
    action: 'Flatten the events at the sender, or raise `max_nesting_depth` (at most 1000).',
  },
  FLUXO_FORWARD_PROTOCOL: {
    area: 'source',
    meaning:
      'A Fluentd forward peer sent something that is not the forward protocol (malformed MessagePack, an unknown ' +
      'message shape, a message larger than `max_message_bytes`). A forward source closes that connection; a ' +
      'forward sink treats a bad answer from its server the same way.',
    action:
      'Check that the peer speaks Fluentd forward (not HTTP or plain TCP) to this port, that both sides agree on ' +
      'TLS and `shared_key`, and raise `max_message_bytes` if the peer sends larger chunks.',
  },
  FLUXO_FILE_CHECKPOINT_READ: {
    area: 'source',
    meaning: 'A file source cannot read its checkpoint file under `data_dir` (permissions, an I/O error).',
    action:
      'Make `data_dir` readable and writable by the user Fluxo runs as. Do not delete checkpoints to get past it: ' +
      'files would be read again from their start.',
  },
  FLUXO_TLS_CONFIG: {
    area: 'source',
    meaning:
      'A `tls` block is incomplete: a server needs `crt_file` and `key_file`, a client certificate needs both ' +
      '(applies to sources and sinks).',
    action: 'Add the missing file, or remove the `tls` block (or set `enabled: false`).',
  },
  FLUXO_TLS_FILE: {
    area: 'source',
    meaning:
      'A file named in a `tls` block (`crt_file`, `key_file`, `ca_file`) cannot be read when the component starts.',
    action: 'Check the path and that the user Fluxo runs as can read the file (keys are often mode 0600 root).',
  },
  FLUXO_TLS_INVALID: {
    area: 'source',
    meaning:
      'The files of a `tls` block were read but cannot be used: not PEM, an encrypted private key, or a key that ' +
      'does not belong to the certificate.',
    action:
      'Check with `openssl x509 -in <crt_file> -noout -subject` and `openssl pkey -in <key_file> -noout`; the key ' +
      'must be unencrypted PEM and match `crt_file`.',
  },

  // --- transforms and the formats they share ---
  FLUXO_GROK_INVALID: {
    area: 'transform',
    meaning:
      'A grok pattern cannot be compiled: an unknown %{PATTERN}, patterns that reference each other in a cycle, a ' +
      'bad escape or type, or a `pattern_files` entry that cannot be read.',
    action:
      'Fix the pattern as the message explains; define custom patterns in `pattern_definitions` or ' +
      '`pattern_files`. `fluxo test` runs a config’s tests against its transforms.',
  },
  FLUXO_REGEX_INVALID: {
    area: 'transform',
    meaning: 'A regex of a parse transform is not a valid JavaScript regex, or has no named group `(?<field>…)`.',
    action: 'Fix the regex; name each field to extract with `(?<name>…)` (`(?P<name>…)` is accepted too).',
  },

  // --- sinks ---
  FLUXO_SINK_INVALID_OPTIONS: {
    area: 'sink',
    meaning: 'The options of a sink are valid one by one but do not work together (e.g. `tls` with an http:// uri).',
    action: 'Fix the options as the message explains.',
  },
  FLUXO_PATH_TEMPLATE_INVALID: {
    area: 'sink',
    meaning:
      'The `path` template of a file sink is invalid: empty, ending with `/`, a file name starting with `.`, an ' +
      'unknown `%` field, or a `{{` that is never closed or holds no field name.',
    action: 'Fix the template, e.g. `data/master/dt=%Y-%m-%d/hour=%H/part.ndjson.gz`.',
  },
  FLUXO_SINK_RETRYABLE: {
    area: 'sink',
    meaning:
      'A sink could not deliver a batch for a reason that may pass (destination down, slow, or answering "try ' +
      'later"). The batch is retried with backoff; nothing is lost or acknowledged meanwhile.',
    action:
      'Usually nothing: it recovers when the destination does. If it persists, check the destination and the ' +
      'network from this host; a disk buffer keeps events while it lasts.',
  },
  FLUXO_SINK_REJECTED: {
    area: 'sink',
    meaning:
      'The destination rejected events for what they are (bad schema, too large, not encodable). Retrying cannot ' +
      'help: they go to the `dead_letter` output with the reason.',
    action:
      'Read the reason, fix the events upstream (a remap or filter transform) or the destination; route ' +
      '`dead_letter` to a sink to keep them.',
  },
  FLUXO_SINK_STOPPED: {
    area: 'sink',
    meaning: 'A write reached a sink that is already stopping or stopped (during shutdown or a reload).',
    action: 'Nothing: events not written were not acknowledged and are sent again by their source or buffer.',
  },
  FLUXO_FILE_SINK_TEMP_REMOVED: {
    area: 'sink',
    meaning:
      'A file sink’s in-progress file (`.<name>.<owner>.inprogress`) was deleted by something else while being written; the ' +
      'events already acknowledged into it are lost.',
    action:
      'Keep cleanup jobs and log rotation away from the sink’s directory while Fluxo runs; they may only touch ' +
      'finished files.',
  },
  FLUXO_FILE_SINK_CLOSE_FAILED: {
    area: 'sink',
    meaning:
      'A file sink could not finish an in-progress file (fsync or rename failed, e.g. disk full). The file keeps ' +
      'its acknowledged events and is finished at the next start, which keeps trying in the background if it ' +
      'cannot finish it at once.',
    action: 'Free space or fix permissions on the sink’s directory; the next start recovers the file.',
  },
  FLUXO_PARQUET_SEAL_WORKER_EXITED: {
    area: 'sink',
    meaning:
      'The thread that seals Parquet files ended in the middle of a seal (an uncaught error, out of memory, killed). ' +
      'The staging file is untouched; the seal is tried again in a new thread, and after that by the sink’s recovery.',
    action:
      'Nothing if it happens once. If it repeats, read the cause in the message (memory: lower `row_group_size`).',
  },

  FLUXO_NATS_STREAM_MISSING: {
    area: 'sink',
    meaning:
      'A nats sink publishes to a subject that no JetStream stream captures (or JetStream is not enabled on the ' +
      'server). Nothing is stored; the sink keeps retrying, so its buffer fills and pushes back.',
    action:
      'Create a stream capturing the subject (`nats stream add --subjects "logs.>"`), or let the sink create it ' +
      'with `create_stream: { name, subjects }`; run nats-server with `-js`.',
  },
  FLUXO_NATS_AUTH: {
    area: 'sink',
    meaning: 'The NATS server refused the credentials of a nats sink (wrong token, user, password, NKey or creds).',
    action: 'Fix the sink’s `auth` block (or the server’s authorization config); the sink retries with backoff.',
  },
  FLUXO_NATS_CREDENTIALS_FILE: {
    area: 'sink',
    meaning: 'A nats sink cannot read its NKey `seed_file` or `creds_file`.',
    action: 'Check the path and that the user Fluxo runs as can read the file.',
  },

  // --- buffers ---
  FLUXO_BUFFER_UNKNOWN: {
    area: 'buffer',
    meaning: 'A sink’s `buffer.type` names no buffer this Fluxo has.',
    action: 'Use `buffer: { type: memory }` or `buffer: { type: disk }`.',
  },
  FLUXO_BUFFER_OPEN: {
    area: 'buffer',
    meaning: 'A sink’s disk buffer under `data_dir` cannot be opened (permissions, a full disk, an I/O error).',
    action:
      'Make `data_dir` writable by the user Fluxo runs as and free space; `fluxo buffer inspect` shows what the ' +
      'buffer holds.',
  },
  FLUXO_BUFFER_LOCKED: {
    area: 'buffer',
    meaning: 'A disk buffer is locked by another running process: two Fluxo processes share one `data_dir`.',
    action:
      'Give each process its own `data_dir`. If the process named in the message is gone, delete the lock file ' +
      'in the buffer directory.',
  },
  FLUXO_BUFFER_CLOSED: {
    area: 'buffer',
    meaning: 'A batch was offered to a sink buffer that is closing because the pipeline is stopping.',
    action: 'Nothing: the batch was not acknowledged, so its source (or the sender) still has it.',
  },
  FLUXO_SHUTDOWN_TIMEOUT: {
    area: 'sink',
    meaning:
      'A sink did not deliver everything it held within `shutdown_timeout`: its writes in flight were aborted, ' +
      'and what it had not delivered was not acknowledged (its sources or the disk buffer still have it).',
    action:
      'Nothing is lost. If the destination was slow or down, a disk buffer keeps the rest for the next start; ' +
      'raise `shutdown_timeout` to give the sink longer to drain.',
  },
  FLUXO_PIPELINE_STOPPED: {
    area: 'source',
    meaning: 'A source handed over events after the pipeline had stopped; they were refused, not acknowledged.',
    action: 'Nothing: the sender or the checkpoint still has them, and the next run reads them again.',
  },
  FLUXO_FORWARD_CONNECTION: {
    area: 'sink',
    meaning:
      'The connection of a forward sink to a server failed: a connect timeout, a connection the server closed ' +
      'before acknowledging a chunk, or a server marked down by a failed heartbeat. The write goes to the next ' +
      'healthy server, or is retried with backoff.',
    action:
      'Check that the server (a Fluxo forward source, Fluentd or Fluent Bit) is up and reachable at its ' +
      '`address`; the events are retried, never dropped.',
  },
  FLUXO_SHORT_WRITE: {
    area: 'buffer',
    meaning:
      'The disk buffer wrote fewer bytes than asked, almost always because the disk is full. It is handled like ' +
      'ENOSPC: new events are held back (sources slow down) and the write is retried until space returns.',
    action: 'Free space on the disk of `data_dir`, or lower `buffer.max_size`.',
  },

  // --- the API server and the command line ---
  FLUXO_API_LISTEN: {
    area: 'api',
    meaning:
      'The API (/health, /metrics, tap) cannot listen on `api.address`: the port is in use, often by another ' +
      'Fluxo, or the address is not one of this host. Fluxo does not start.',
    action: 'Stop the other process, set another `api.address`, or set `api: { enabled: false }`.',
  },
  FLUXO_SIMULATE_INVALID_OPTIONS: {
    area: 'cli',
    meaning:
      '`fluxo simulate` was given options it cannot run: a protocol without a simulator, a combination the ' +
      'protocol does not support (e.g. TLS over UDP), or a `--tls-ca` file it cannot read.',
    action: 'Change the options as the message explains (`fluxo simulate --help` lists them).',
  },
  FLUXO_DATA_DIR_LOCKED: {
    area: 'cli',
    meaning:
      'Another running `fluxo run` holds the `data_dir` (its pid is in `data_dir/fluxo.lock`). Two processes on ' +
      "one data_dir would both read every file and overwrite each other's checkpoints and buffers, so the second " +
      'does not start. A lock left by a process that is gone (kill -9, a crash) is taken over.',
    action:
      'Stop the process named in the message, or give each process its own `data_dir`. If that pid now belongs ' +
      'to something else, delete the lock file.',
  },
} as const satisfies Record<string, ErrorCodeEntry>;

export type ErrorCode = keyof typeof errorCatalogue;
