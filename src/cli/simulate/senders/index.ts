import type { SenderFactory } from '../sender.ts';
import { forwardSender } from './forward.ts';
import { httpSender } from './http.ts';
import { otlpSender } from './otlp.ts';
import { syslogSender } from './syslog.ts';
import { tcpSender } from './tcp.ts';

export const PROTOCOLS = ['syslog', 'http', 'tcp', 'forward', 'otlp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The sender of each protocol. */
export const SENDERS: Record<Protocol, SenderFactory | undefined> = {
  syslog: syslogSender,
  http: httpSender,
  tcp: tcpSender,
  forward: forwardSender,
  otlp: otlpSender,
};
