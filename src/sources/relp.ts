import { z } from 'zod';
import { tlsServerOption } from '../codecs/tls.ts';
import { defineSource } from '../core/component.ts';
import { connectionDeadlineOptions, keepaliveOption, maxConnectionsOption } from '../core/net/options.ts';
import { address, size } from '../core/units.ts';
import { RelpSource } from './relp/server.ts';

const options = z.object({
  address: address()
    .default('127.0.0.1:2514')
    .describe('Address to listen on, `host:port`; port 0 picks a free port (see the start-up banner).'),
  max_message_bytes: size()
    .default(64 * 1024)
    .describe(
      'Longest accepted syslog message (the DATA of a `syslog` frame) in bytes. A longer one goes to the dead letter ' +
        'output with its first KiB and its size, is answered `200 OK` so the sender does not resend it forever, ' +
        'logged and counted in `fluxo_relp_messages_too_long_total`. Frames of other commands are limited the same way.',
    ),
  max_connections: maxConnectionsOption(
    'relp',
    'Each connection may hold up to `max_message_bytes` of an unfinished frame. rsyslog (omrelp) sees its session ' +
      'fail before `open` is answered, keeps its messages and reconnects: nothing is lost.',
  ),
  tls: tlsServerOption(),
  keepalive: keepaliveOption(),
  // 30 s for a frame, as syslog's message: at most max_message_bytes; a session owing answers is never timed out.
  // rsyslog resends what was not answered on its next session, so a closed idle session loses nothing.
  ...connectionDeadlineOptions(30_000, 'frame'),
});

export type RelpSourceOptions = z.infer<typeof options>;

export const relpSource = defineSource({
  kind: 'source',
  type: 'relp',
  description:
    "Receives syslog over RELP (rsyslog's Reliable Event Logging Protocol, `omrelp`), answering each message only once every sink settled it.",
  options,
  example: [
    '# At-least-once from rsyslog: each `syslog` frame is answered `200 OK` only after every sink delivered (or',
    '# durably buffered) its event; a frame whose batch failed is not answered and its connection is closed, so',
    '# rsyslog resends it. Duplicates are possible after a crash or a reconnect, losses are not.',
    '# Events have the fields of the syslog source (`message`, `timestamp`, `host`, `facility`, `severity`,',
    '# `hostname`, `appname`, `procid`, `msgid`, `structured_data`) with `source_type: relp`.',
    '# A malformed frame closes its connection (fluxo_relp_protocol_errors_total); rsyslog reconnects and resends.',
    '# rsyslog side:  action(type="omrelp" target="fluxo.example" port="2514")',
    'sources:',
    '  from_rsyslog:',
    '    type: relp',
    '    address: 0.0.0.0:2514',
    '  from_rsyslog_tls:',
    '    type: relp',
    '    address: 0.0.0.0:2515',
    '    tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key }',
  ].join('\n'),
  build: (opts, ctx) => new RelpSource(opts, ctx),
});
