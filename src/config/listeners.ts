import { splitAddress } from '../core/units.ts';

/** A socket the pipeline will bind: a source's `address` (or the API's), with its transport. */
export interface Listener {
  /** Component id, or `api` for the HTTP API. */
  readonly id: string;
  readonly protocol: 'tcp' | 'udp';
  readonly address: string;
}

export interface ListenerConflict {
  readonly first: Listener;
  readonly second: Listener;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * What a source's options bind. Sources declare no listener list, so this reads the options every listening
 * source shares (`address`, `mode`); forward also binds UDP on its port for heartbeats when asked to.
 */
export function listenersOf(id: string, type: string, options: Record<string, unknown>): Listener[] {
  const address = options.address;
  if (typeof address !== 'string') return [];
  const protocol = options.mode === 'udp' ? 'udp' : 'tcp';
  const listeners: Listener[] = [{ id, protocol, address }];
  if (type === 'forward' && options.heartbeat_udp === true) listeners.push({ id, protocol: 'udp', address });
  return listeners;
}

/**
 * Pairs of listeners the OS would refuse to bind together: one transport and one port, on the same host or with
 * either on the wildcard address. Port 0 picks a free port each time, so it never conflicts.
 */
export function findListenerConflicts(listeners: readonly Listener[]): ListenerConflict[] {
  const conflicts: ListenerConflict[] = [];
  const parsed = listeners.map((l) => ({ listener: l, ...splitAddress(l.address) }));
  for (let i = 0; i < parsed.length; i++) {
    const a = parsed[i]!;
    if (a.port === 0) continue;
    for (let j = i + 1; j < parsed.length; j++) {
      const b = parsed[j]!;
      if (b.port !== a.port || b.listener.protocol !== a.listener.protocol || b.listener.id === a.listener.id) continue;
      const host = (h: string) => h.toLowerCase();
      if (host(a.host) === host(b.host) || WILDCARDS.has(a.host) || WILDCARDS.has(b.host))
        conflicts.push({ first: a.listener, second: b.listener });
    }
  }
  return conflicts;
}
