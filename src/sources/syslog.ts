import { z } from 'zod';
import { tlsServerOption } from '../codecs/tls.ts';
import { defineSource } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import {
  connectionDeadlineOptions,
  keepaliveOption,
  maxConnectionsOption,
  maxPendingBytesOption,
  receiveBufferBytesOption,
} from '../core/net/options.ts';
import { address, size } from '../core/units.ts';
import { SyslogTcpSource } from './syslog/tcp.ts';
import { SyslogUdpSource } from './syslog/udp.ts';

const options = z.object({
  mode: z
    .enum(['tcp', 'udp'])
    .default('tcp')
    .describe(
      'Transport, one per source as in Vector and Fluent Bit (declare two sources on the same port for both). ' +
        '`tcp`: newline framing or RFC 6587 octet counting, detected per connection; a blocked pipeline stops ' +
        'reading, so backpressure reaches the sender. `udp`: one message per datagram (RFC 5426); best-effort, ' +
        'datagrams are lost when the pipeline or the kernel buffer cannot keep up.',
    ),
  address: address()
    .default('127.0.0.1:5514')
    .describe('Address to listen on, `host:port`; port 0 picks a free port (see the start-up banner).'),
  max_message_bytes: size()
    .default(64 * 1024)
    .describe(
      'Longest accepted message in bytes (line, octet-counted frame or datagram). A longer one goes to the dead ' +
        'letter output with its first KiB and its size, is logged and counted in `fluxo_syslog_messages_too_long_total`.',
    ),
  max_connections: maxConnectionsOption(
    'syslog',
    'TCP only; each connection may hold up to `max_message_bytes`. Syslog over TCP has no acknowledgements: ' +
      'messages a sender (rsyslog omfwd, syslog-ng) writes before it notices the close are lost; use the `relp` ' +
      'source where that matters.',
  ),
  max_pending_bytes: maxPendingBytesOption('syslog', 'messages'),
  tls: tlsServerOption(),
  receive_buffer_bytes: receiveBufferBytesOption(),
  keepalive: keepaliveOption(),
  ...connectionDeadlineOptions(30_000, 'message'),
});

export type SyslogSourceOptions = z.infer<typeof options>;

export const syslogSource = defineSource({
  kind: 'source',
  type: 'syslog',
  description:
    'Receives syslog (RFC 5424 and RFC 3164) over TCP (newline or octet-counted, optionally TLS) or UDP, parsed into fields.',
  options,
  example: [
    "# Each message becomes an event: `message` (the MSG part), `timestamp` (the message's, in UTC; the time of",
    "# receipt when it has none; RFC 3164 dates are read in the collector's time zone), `host` (the sender's address),",
    '# `source_type: syslog`, `facility` and `severity` as names (`local7`, `info`), and when the message has them',
    '# `hostname`, `appname`, `procid`, `msgid` (strings) and `structured_data` ({ "id@32473": { "key": "value" } }).',
    '# A line that is not syslog is kept whole in `message`, without `facility` (fluxo_syslog_parse_failures_total).',
    '# TCP needs no setting for the framing: octet counting (`123 <13>1 …`) or one message per line, per connection.',
    '# UDP is best-effort: nothing tells the sender a datagram was lost.',
    'sources:',
    '  syslog_tcp:',
    '    type: syslog',
    '    mode: tcp',
    '    address: 0.0.0.0:5514',
    '  syslog_udp:',
    '    type: syslog',
    '    mode: udp',
    '    address: 0.0.0.0:5514',
    '  syslog_tls:',
    '    type: syslog',
    '    mode: tcp',
    '    address: 0.0.0.0:6514',
    '    tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key }',
  ].join('\n'),
  build: (opts, ctx) => {
    if (opts.mode === 'udp') {
      if (opts.tls?.enabled) {
        throw new FluxoError(
          'FLUXO_SYSLOG_TLS_OVER_UDP',
          `source ${ctx.id}: tls needs mode: tcp (syslog over DTLS is not supported)`,
        );
      }
      return new SyslogUdpSource(opts, ctx);
    }
    return new SyslogTcpSource(opts, ctx);
  },
});
