/**
 * The memory bound under a stalled sink: 300 connections push into a sink that never delivers, so the memory
 * buffer fills and backpressure reaches the senders. Fluxo's memory must then stop growing at a bound set by
 * the buffer's limits, and the buffer's own counters must never pass them.
 *
 * The bound (MiB) is the RSS with every connection open and nothing sent, plus what the limits let Fluxo hold:
 *   buffer    max_bytes (the events' input bytes) + max_events × 1 KiB (an event object, its `_id` and
 *             fields beside its message; ~0.5 KiB measured in heap snapshots of this shape, doubled)
 *   sources   per connection, its last read (64 KiB) framed into events that wait for room in the buffer
 *             (a paused connection has one such emit pending; those events are outside the buffer's counts):
 *             64 KiB + 64 KiB / 200 bytes per line (the access-log lines average 243) × 1 KiB; plus one
 *             gathered batch (1,000 events × 1 KiB)
 *   request   the write in flight: batch.max_events (1,000) × 1 KiB, encoded once and kept for its retries
 *   heap      32 MiB of garbage between collections (V8's young generation and old-space slack)
 * An RSS past it means memory grows with the input rather than with the limits.
 */

import type { FluxoServer } from './children.ts';
import { metricSum } from './metrics-text.ts';
import { nowMs, vmMiB } from './proc.ts';
import { startLoad } from './sockets.ts';

const KiB = 1024;
const MiB = 1024 * 1024;
const EVENT_ALLOWANCE = 1 * KiB;
const READ_CHUNK = 64 * KiB;
const MIN_LINE_BYTES = 200;
const GATHERED_BATCH_EVENTS = 1000;
const BATCH_MAX_EVENTS = 1000;
const HEAP_SLACK = 32 * MiB;

export function stalledBoundMiB(rssConnectedMiB: number, maxEvents: number, maxBytes: number, connections: number) {
  const bytes =
    maxBytes +
    maxEvents * EVENT_ALLOWANCE +
    connections * (READ_CHUNK + Math.ceil(READ_CHUNK / MIN_LINE_BYTES) * EVENT_ALLOWANCE) +
    GATHERED_BATCH_EVENTS * EVENT_ALLOWANCE +
    BATCH_MAX_EVENTS * EVENT_ALLOWANCE +
    HEAP_SLACK;
  return rssConnectedMiB + bytes / MiB;
}

export interface StalledOutcome {
  problems: string[];
  figures: Record<string, unknown>;
}

/**
 * Sends until the source's received count has not moved for `settleMs` (backpressure reached the senders),
 * sampling /metrics and VmRSS every 200 ms; gives up waiting after `maxMs` and checks what it saw.
 */
export async function measureStalled(
  server: FluxoServer,
  o: {
    sourceId: string;
    sinkId: string;
    connections: number;
    events: number;
    chunkBytes: number;
    maxEvents: number;
    maxBytes: number;
    settleMs?: number;
    maxMs?: number;
  },
): Promise<StalledOutcome> {
  const settleMs = o.settleMs ?? 3000;
  const maxMs = o.maxMs ?? 60_000;
  // The generator cycles through its payload until killed: it blocks on the paused sockets long before.
  const { generator } = await startLoad(server, o.connections, o.events, [
    '--chunk-bytes',
    String(o.chunkBytes),
    '--duration-s',
    '3600',
  ]);
  const problems: string[] = [];
  try {
    const rssConnected = vmMiB(server.pid, 'VmRSS');
    generator.go();
    const started = nowMs();
    let received = -1;
    let lastChange = started;
    const max = { bufferEvents: 0, bufferBytes: 0, pendingAcks: 0, rss: 0 };
    let last: Record<string, number> = {};
    let samples = 0;
    while (nowMs() - started < maxMs) {
      await new Promise((r) => setTimeout(r, 200));
      const text = await server.metricsText();
      samples++;
      const sink = { component_id: o.sinkId };
      last = {
        buffer_events: metricSum(text, 'fluxo_buffer_events', sink),
        buffer_bytes: metricSum(text, 'fluxo_buffer_bytes', sink),
        buffer_max_events: metricSum(text, 'fluxo_buffer_max_events', sink),
        buffer_dropped_events: metricSum(text, 'fluxo_buffer_dropped_events_total', sink),
        pending_acknowledgements: metricSum(text, 'fluxo_pending_acknowledgements', { component_id: o.sourceId }),
        source_received_events: metricSum(text, 'fluxo_component_received_events_total', { component_id: o.sourceId }),
        sink_sent_events: metricSum(text, 'fluxo_component_sent_events_total', sink),
        sink_retries: metricSum(text, 'fluxo_sink_retries_total', sink),
      };
      max.bufferEvents = Math.max(max.bufferEvents, last.buffer_events!);
      max.bufferBytes = Math.max(max.bufferBytes, last.buffer_bytes!);
      max.pendingAcks = Math.max(max.pendingAcks, last.pending_acknowledgements!);
      max.rss = Math.max(max.rss, vmMiB(server.pid, 'VmRSS'));
      const t = nowMs();
      if (last.source_received_events !== received) {
        received = last.source_received_events!;
        lastChange = t;
      } else if (t - lastChange >= settleMs && received > 0) break;
    }
    const settled = nowMs() - lastChange >= settleMs;
    if (!settled) problems.push(`the source still received events after ${maxMs / 1000} s: the sink is not stalled`);
    const peak = vmMiB(server.pid, 'VmHWM');
    const bound = stalledBoundMiB(rssConnected, o.maxEvents, o.maxBytes, o.connections);
    if (max.bufferEvents > o.maxEvents)
      problems.push(`buffer held ${max.bufferEvents} events > max_events ${o.maxEvents}`);
    if (max.bufferBytes > o.maxBytes) problems.push(`buffer held ${max.bufferBytes} bytes > max_bytes ${o.maxBytes}`);
    if (peak > bound) problems.push(`peak RSS ${peak.toFixed(1)} MiB > bound ${bound.toFixed(1)} MiB`);
    if ((last.sink_sent_events ?? 0) > 0) problems.push(`the stalled sink delivered ${last.sink_sent_events} events`);
    const round1 = (x: number) => Math.round(x * 10) / 10;
    return {
      problems,
      figures: {
        rss_connected_mib: round1(rssConnected),
        peak_rss_mib: round1(peak),
        max_sampled_rss_mib: round1(max.rss),
        rss_bound_mib: round1(bound),
        max_buffer_events: max.bufferEvents,
        max_buffer_bytes: max.bufferBytes,
        max_pending_acknowledgements: max.pendingAcks,
        ...Object.fromEntries(Object.entries(last).map(([k, v]) => [`last_${k}`, v])),
        // Received, neither in the buffer nor delivered: held by the sources' pending emits, one per connection.
        events_waiting_admission:
          (last.source_received_events ?? 0) - (last.buffer_events ?? 0) - (last.sink_sent_events ?? 0),
        metrics_samples: samples,
        pushed_s: Math.round(nowMs() - started) / 1000,
      },
    };
  } finally {
    generator.kill();
  }
}
