import type { SenderFactory } from '../sender.ts';
import { httpSender } from './http.ts';
import { syslogSender } from './syslog.ts';
import { tcpSender } from './tcp.ts';

export const PROTOCOLS = ['syslog', 'http', 'tcp', 'forward', 'otlp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The sender of each protocol; undefined while a protocol's sender is not written yet. */
export const SENDERS: Record<Protocol, SenderFactory | undefined> = {
  syslog: syslogSender,
  http: httpSender,
  tcp: tcpSender,
  forward: undefined,
  otlp: undefined,
};
