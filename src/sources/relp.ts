import { z } from 'zod';
import { tlsServerOption } from '../codecs/tls.ts';
import { defineSource } from '../core/component.ts';
import { keepaliveOption } from '../core/net/options.ts';
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
  max_connections: z
    .number()
    .int()
    .positive()
    .default(1000)
    .describe(
      'Most simultaneous connections (each may hold up to `max_message_bytes` of an unfinished frame). Extra ' +
        'connections are closed at once, logged and counted in `fluxo_relp_connections_rejected_total`; the sender ' +
        'keeps its messages and retries.',
    ),
  tls: tlsServerOption(),
  keepalive: keepaliveOption(),
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
