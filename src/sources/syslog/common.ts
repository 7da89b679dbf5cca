import { SyslogParser, syslogEvent } from '../../codecs/syslog.ts';
import type { SourceContext } from '../../core/component.ts';
import type { Event } from '../../core/event.ts';
import { NetSourceBase } from '../../core/net/net-source-base.ts';
import { RateLimitedWarnings } from '../../core/rate-limited-warnings.ts';
import type { SyslogSourceOptions } from '../syslog.ts';

/** At most one warning of each kind per this interval: a misbehaving sender must not flood the log. */

/**
 * What syslog over TCP and UDP share: parsing messages into events, counting parse failures and overlong
 * messages, rate-limited warnings (stamping and emits in flight are NetSourceBase's).
 */
export abstract class SyslogSourceBase extends NetSourceBase<SyslogSourceOptions> {
  private readonly parser = new SyslogParser();
  private readonly parseFailures;
  private readonly tooLong;
  private readonly overlongReason: string;
  private readonly warnings: RateLimitedWarnings;

  constructor(opts: SyslogSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.parseFailures = ctx.metrics.counter(
      'fluxo_syslog_parse_failures_total',
      'Messages that were not RFC 5424 or RFC 3164: kept whole in `message`, without syslog fields.',
    );
    this.tooLong = ctx.metrics.counter(
      'fluxo_syslog_messages_too_long_total',
      'Messages longer than max_message_bytes, sent to the dead letter output.',
    );
    this.overlongReason = `syslog message longer than max_message_bytes (${opts.max_message_bytes} bytes)`;
  }

  /** Parses messages into events appended to `out`; empty messages carry nothing and are skipped. */
  protected appendEvents(messages: readonly string[], host: string, out: Event[]): void {
    if (messages.length === 0) return;
    const now = this.clock.now();
    const received = this.clock.iso;
    const parser = this.parser;
    const ids = this.ids;
    let failures = 0;
    let sample: string | undefined;
    for (let i = 0; i < messages.length; i++) {
      const line = messages[i]!;
      if (line.length === 0) continue;
      const m = parser.parse(line, now);
      if (m === undefined) {
        failures++;
        sample ??= line;
        out.push({ message: line, timestamp: received, host, source_type: 'syslog', _id: ids.next(now) });
        continue;
      }
      out.push(syslogEvent(m, received, host, 'syslog', ids.next(now)));
    }
    if (failures > 0) {
      this.parseFailures.inc(failures);
      this.warn(
        'parse',
        { host, reason: parser.error, sample: sample!.slice(0, 200) },
        'not a syslog message: kept raw',
      );
    }
  }

  deadLetterOverlong(prefix: string, originalBytes: number, host: string): void {
    this.tooLong.inc();
    const now = this.clock.now();
    const event: Event = {
      message: prefix,
      timestamp: this.clock.iso,
      host,
      source_type: 'syslog',
      _id: this.ids.next(now),
      _truncated: true,
      _original_bytes: originalBytes,
    };
    this.ctx.deadLetter([event], this.overlongReason);
    this.warn(
      'overlong',
      { host, bytes: originalBytes, max_message_bytes: this.opts.max_message_bytes },
      'syslog message too long: sent to the dead letter output',
    );
  }

  /** A warning of kind `kind` at most once per 10 s, with how many were suppressed since the last one. */
  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    this.warnings.warn(kind, fields, message);
  }
}

export { peerHost } from '../../core/net/listen.ts';
