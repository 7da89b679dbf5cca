import type { LineBatch, SenderFactory } from '../sender.ts';
import { StreamServer } from './stream.ts';

/** Plain newline-delimited lines over TCP, as `nc` or a socket-writing application sends (the `socket` source). */
export const tcpSender: SenderFactory = (options, stats) => ({
  acknowledgement: undefined,
  async connect(_index, name) {
    const server = new StreamServer(options, stats, name, encodeLines);
    await server.connect();
    return server;
  },
});

function encodeLines(batch: LineBatch): string {
  return `${batch.lines.join('\n')}\n`;
}
