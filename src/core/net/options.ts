import { z } from 'zod';
import { duration, size } from '../units.ts';

/**
 * Options every listening source spells and documents the same way (socket, syslog, forward, relp, http, otlp):
 * one definition so their names, defaults and docs cannot drift apart.
 */

/**
 * Default `max_connections` of every listening source. 1,000 covers the ≤300 agents of one aggregator with room
 * for reconnects, and bounds what open connections can hold (each may buffer up to its max message size).
 */
export const DEFAULT_MAX_CONNECTIONS = 1000;

/**
 * `max_connections`, with what a sender sees when it is refused. `type` names the counter
 * `fluxo_<type>_connections_rejected_total`; `evicts`: the source has evict_idle_after (TCP deadlines);
 * `refusal`: what the sender sees and does, e.g. that it retries.
 */
export function maxConnectionsOption(type: string, refusal: string, evicts = true) {
  const beyond = evicts
    ? 'A new connection beyond them evicts the longest-idle one (see `evict_idle_after`); when none is idle ' +
      'enough it is refused'
    : 'A new connection beyond them is refused';
  // Grouped by hand: toLocaleString would initialise ICU at start, ~7 MiB of an idle agent's RSS for a comma.
  const shown = String(DEFAULT_MAX_CONNECTIONS).replace(/\B(?=(\d{3})+$)/g, ',');
  return z
    .number()
    .int()
    .positive()
    .default(DEFAULT_MAX_CONNECTIONS)
    .describe(
      `Most simultaneous connections (default ${shown}, the same for ` +
        `every listening source). ${beyond}: accepted by TCP and closed at once, before anything is read or ` +
        `answered. ${refusal} Logged (rate-limited) and counted in \`fluxo_${type}_connections_rejected_total\`.`,
    );
}

/**
 * Default `max_pending_bytes`: 4 MiB of lines is ~20,000 access-log events parsed (a few times their wire size
 * in memory), beside a sink buffer's own bound, and still 64 reads of 64 KiB ahead of a pipeline that keeps up.
 */
export const DEFAULT_MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** `max_pending_bytes` of the TCP listening sources; `unit` is what they frame (`lines`, `messages`). */
export function maxPendingBytesOption(type: string, unit: string) {
  return size()
    .default(DEFAULT_MAX_PENDING_BYTES)
    .describe(
      `TCP: most bytes of received ${unit} waiting for the pipeline to take them, across all connections ` +
        '(default `4MiB`). Past it no connection reads until half of them were taken, so TCP pushes back on the ' +
        'senders and a slow sink holds at most this much beside its buffer, however many connections are open. ' +
        `Current value in \`fluxo_${type}_pending_bytes\`, pauses in \`fluxo_${type}_read_pauses_total\`.`,
    );
}

export function receiveBufferBytesOption() {
  return size()
    .optional()
    .describe('UDP: kernel receive buffer (SO_RCVBUF) to absorb bursts, e.g. `8MiB`; the system default when absent.');
}

export function keepaliveOption() {
  return z
    .boolean()
    .default(true)
    .describe('TCP: send keep-alive probes on idle connections so vanished peers are noticed and their slot freed.');
}

/**
 * TCP connection deadlines (see connection-deadlines.ts). Idle 5 min: far above the heartbeat or keep-alive
 * period of any agent that keeps its connection open (Fluentd heartbeats every second, Fluent Bit closes its own
 * idle connections after 30 s), so only abandoned or hostile connections reach it; senders reconnect on their
 * next message. Evict after 10 s: a connection that has not completed a frame for that long gives up its slot to
 * a new one when max_connections are open.
 */
export function connectionDeadlineOptions(readTimeoutDefaultMs: number, frame: string) {
  return {
    idle_timeout: duration()
      .default(300_000)
      .describe(
        'TCP: close a connection that received nothing for this long (default 5 min) (not while it waits for the pipeline); ' +
          `\`0\` never. Counted in \`fluxo_<type>_connections_idle_closed_total\`.`,
      ),
    read_timeout: duration()
      .default(readTimeoutDefaultMs)
      .describe(
        `TCP: close a connection whose incomplete ${frame} began arriving this long ago, however slowly it trickles ` +
          '(slowloris); `0` never. The incomplete part is dropped; logged (rate-limited) and counted in ' +
          '`fluxo_<type>_connections_read_timeout_total`.',
      ),
    evict_idle_after: duration()
      .default(10_000)
      .describe(
        'TCP: when max_connections are open, a new connection closes the one that has gone longest without ' +
          `completing a ${frame}, if that is at least this long (\`fluxo_<type>_connections_evicted_total\`); ` +
          'otherwise the new connection is refused (closed at once, `fluxo_<type>_connections_rejected_total`).',
      ),
  };
}
