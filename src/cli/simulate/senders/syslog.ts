import type { LineBatch, SenderFactory } from '../sender.ts';
import { StreamServer } from './stream.ts';

/** facility local7 (23), severity info (6): where nginx and Apache access logs usually go. */
const PRI = '<190>';

/**
 * RFC 5424 messages with RFC 6587 octet counting over TCP, as rsyslog's `omfwd` sends with
 * `TCP_Framing="octet-counted"` and `RSYSLOG_SyslogProtocol23Format`, or syslog-ng's `syslog()` driver:
 * `<190>1 2025-03-05T14:02:17.123Z web-001 nginx - access - 203.0.113.9 - - [05/Mar/2025…] "GET /?seq=1 …" …`
 */
export const syslogSender: SenderFactory = (options, stats) => ({
  acknowledgement: undefined,
  async connect(_index, name) {
    const server = new StreamServer(options, stats, name, encodeSyslog);
    await server.connect();
    return server;
  },
});

function encodeSyslog(batch: LineBatch, server: string): string {
  const header = `${PRI}1 ${new Date(batch.at).toISOString()} ${server} nginx - access - `;
  let out = '';
  for (const line of batch.lines) {
    const message = header + line;
    out += `${Buffer.byteLength(message)} ${message}`;
  }
  return out;
}
