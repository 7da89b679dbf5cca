import type { Reader, Writer } from './kafka-shim.ts';

/*
 * The consumer-side calls of @platformatic/kafka in their first flexible versions, rewritten to the older
 * versions librdkafka 2.0.2's mock handles. Each pair differs in encoding (compact strings, arrays, tagged
 * fields) and in a few fields the mock neither needs nor sets (given their "unknown" value here).
 */
export interface Translator {
  /** The version the client sends (and the shim advertises). */
  readonly client: number;
  /** The version the mock receives. */
  readonly broker: number;
  /** False for a client version that is not flexible (no tagged fields in headers); true when absent. */
  readonly flexible?: boolean;
  /**
   * Body of the client's request (header done) → body of the broker's; returns what the answer needs of it.
   * `state` is shared by every connection to one cluster's shim.
   */
  request(r: Reader, w: Writer, state: Map<string, unknown>): unknown;
  /** Body of the broker's answer (after the correlation id) → body of the client's. */
  response(
    r: Reader,
    w: Writer,
    shimAddress: (host: string, port: number) => number,
    request: unknown,
    state: Map<string, unknown>,
  ): void;
}

const str = (r: Reader) => r.compactStr();

const INVALID_REQUEST = 42;

function carray(r: Reader, each: () => void): number {
  const n = r.compactCount();
  for (let i = 0; i < n; i++) each();
  return n;
}

export const GROUP_TRANSLATORS: Record<number, Translator> = {
  // FindCoordinator v4 (a batch of keys) → v2 (one key)
  10: {
    client: 4,
    broker: 2,
    request(r, w) {
      const keyType = r.i8();
      const keys: string[] = [];
      carray(r, () => keys.push(str(r) ?? ''));
      w.str(keys[0] ?? '').i8(keyType);
      return keys;
    },
    response(r, w, shimAddress, request) {
      const throttle = r.i32();
      const error = r.i16();
      const message = r.str();
      const node = r.i32();
      const host = r.str() ?? '127.0.0.1';
      const port = r.i32();
      const keys = request as string[];
      w.i32(throttle).compactCount(keys.length);
      for (const key of keys) {
        w.compactStr(key).i32(node).compactStr('127.0.0.1').i32(shimAddress(host, port));
        w.i16(error).compactStr(message).tags();
      }
      w.tags();
    },
  },
  // JoinGroup v6 → v5
  11: {
    client: 6,
    broker: 5,
    request(r, w) {
      w.str(str(r)).i32(r.i32()).i32(r.i32()).str(str(r)).str(str(r)).str(str(r));
      const n = r.compactCount();
      w.i32(n);
      for (let i = 0; i < n; i++) {
        w.str(str(r)).bytes(r.compactBytes());
        r.skipTags();
      }
    },
    response(r, w) {
      w.i32(r.i32()).i16(r.i16()).i32(r.i32()).compactStr(r.str()).compactStr(r.str()).compactStr(r.str());
      const n = r.i32();
      w.compactCount(n);
      for (let i = 0; i < n; i++) w.compactStr(r.str()).compactStr(r.str()).compactBytes(r.bytes()).tags();
      w.tags();
    },
  },
  // Heartbeat v4 → v3
  12: {
    client: 4,
    broker: 3,
    request(r, w) {
      w.str(str(r)).i32(r.i32()).str(str(r)).str(str(r));
    },
    response(r, w) {
      w.i32(r.i32()).i16(r.i16()).tags();
    },
  },
  // LeaveGroup v4 (a batch of members) → v1 (one member)
  13: {
    client: 4,
    broker: 1,
    request(r, w) {
      const group = str(r);
      const members: string[] = [];
      carray(r, () => {
        members.push(str(r) ?? '');
        str(r);
        r.skipTags();
      });
      w.str(group).str(members[0] ?? '');
      return members;
    },
    response(r, w, _shimAddress, request) {
      const throttle = r.i32();
      const error = r.i16();
      const members = request as string[];
      w.i32(throttle).i16(error).compactCount(members.length);
      for (const m of members) w.compactStr(m).compactStr(null).i16(error).tags();
      w.tags();
    },
  },
  // SyncGroup v4 → v3. The mock answers a follower's SyncGroup that arrives after the leader's with
  // INVALID_REQUEST (its group is already "up"), where a broker hands the follower its assignment: the shim
  // keeps each generation's assignments from the leader's request and answers such a follower with its own.
  14: {
    client: 4,
    broker: 3,
    request(r, w, state) {
      const group = str(r);
      const generation = r.i32();
      const member = str(r);
      w.str(group).i32(generation).str(member).str(str(r));
      const n = r.compactCount();
      w.i32(n);
      const assignments = new Map<string, Buffer | null>();
      for (let i = 0; i < n; i++) {
        const id = str(r);
        const assignment = r.compactBytes();
        assignments.set(id ?? '', assignment);
        w.str(id).bytes(assignment);
        r.skipTags();
      }
      const key = `sync ${group} ${generation}`;
      if (n > 0) state.set(key, assignments);
      return { key, member };
    },
    response(r, w, _shimAddress, request, state) {
      const { key, member } = request as { key: string; member: string };
      const throttle = r.i32();
      const error = r.i16();
      const assignment = r.bytes();
      const fromLeader = (state.get(key) as Map<string, Buffer | null> | undefined)?.get(member);
      if (error === INVALID_REQUEST && fromLeader !== undefined) w.i32(throttle).i16(0).compactBytes(fromLeader);
      else w.i32(throttle).i16(error).compactBytes(assignment);
      w.tags();
    },
  },
  // OffsetCommit v8 → v7
  8: {
    client: 8,
    broker: 7,
    request(r, w) {
      w.str(str(r)).i32(r.i32()).str(str(r)).str(str(r));
      const topics = r.compactCount();
      w.i32(topics);
      for (let t = 0; t < topics; t++) {
        w.str(str(r));
        const partitions = r.compactCount();
        w.i32(partitions);
        for (let p = 0; p < partitions; p++) {
          w.i32(r.i32()).raw(r.raw(8)).i32(r.i32()).str(str(r));
          r.skipTags();
        }
        r.skipTags();
      }
    },
    response(r, w) {
      w.i32(r.i32());
      const topics = r.i32();
      w.compactCount(topics);
      for (let t = 0; t < topics; t++) {
        w.compactStr(r.str());
        const partitions = r.i32();
        w.compactCount(partitions);
        for (let p = 0; p < partitions; p++) w.i32(r.i32()).i16(r.i16()).tags();
        w.tags();
      }
      w.tags();
    },
  },
  // OffsetFetch v8 (a batch of groups) → v5 (one group)
  9: {
    client: 8,
    broker: 5,
    request(r, w) {
      const groups = r.compactCount();
      const names: string[] = [];
      for (let g = 0; g < groups; g++) {
        const group = str(r) ?? '';
        names.push(group);
        const topics = r.compactCount();
        if (g === 0) {
          w.str(group).i32(topics);
        }
        for (let t = 0; t < topics; t++) {
          const name = str(r);
          const parts: number[] = [];
          carray(r, () => parts.push(r.i32()));
          r.skipTags();
          if (g === 0) {
            w.str(name).i32(parts.length);
            for (const p of parts) w.i32(p);
          }
        }
        r.skipTags();
      }
      r.i8(); // require_stable: the mock has no transactions pending to wait for
      return names[0] ?? '';
    },
    response(r, w, _shimAddress, request) {
      const throttle = r.i32();
      const topics = r.i32();
      w.i32(throttle)
        .compactCount(1)
        .compactStr(request as string)
        .compactCount(topics);
      for (let t = 0; t < topics; t++) {
        w.compactStr(r.str());
        const partitions = r.i32();
        w.compactCount(partitions);
        for (let p = 0; p < partitions; p++) {
          w.i32(r.i32()).raw(r.raw(8)).i32(r.i32()).compactStr(r.str()).i16(r.i16()).tags();
        }
        w.tags();
      }
      w.i16(r.i16()).tags().tags();
    },
  },
  // ListOffsets v5 → v5: the same version, but librdkafka 2.0.2's mock writes each partition's leader_epoch as
  // an int64 where the protocol has an int32, so every partition after the first is misread by a client.
  2: {
    client: 5,
    broker: 5,
    flexible: false,
    request(r, w) {
      w.raw(r.raw(r.buf.length - r.offset));
    },
    response(r, w) {
      w.i32(r.i32());
      const topics = r.i32();
      w.i32(topics);
      for (let t = 0; t < topics; t++) {
        w.str(r.str());
        const partitions = r.i32();
        w.i32(partitions);
        for (let p = 0; p < partitions; p++) {
          w.i32(r.i32()).i16(r.i16()).raw(r.raw(8)).raw(r.raw(8));
          const epoch = r.raw(8);
          w.i32(epoch.readInt32BE(4));
        }
      }
    },
  },
  // Fetch v12 → v11
  1: {
    client: 12,
    broker: 11,
    request(r, w) {
      w.i32(r.i32()).i32(r.i32()).i32(r.i32()).i32(r.i32()).i8(r.i8()).i32(r.i32()).i32(r.i32());
      const topics = r.compactCount();
      w.i32(topics);
      for (let t = 0; t < topics; t++) {
        w.str(str(r));
        const partitions = r.compactCount();
        w.i32(partitions);
        for (let p = 0; p < partitions; p++) {
          w.i32(r.i32()).i32(r.i32()).raw(r.raw(8));
          r.i32(); // last_fetched_epoch (v12): no divergence check in the mock
          w.raw(r.raw(8)).i32(r.i32());
          r.skipTags();
        }
        r.skipTags();
      }
      const forgotten = r.compactCount();
      w.i32(Math.max(forgotten, 0));
      for (let f = 0; f < forgotten; f++) {
        w.str(str(r));
        const parts: number[] = [];
        carray(r, () => parts.push(r.i32()));
        w.i32(parts.length);
        for (const p of parts) w.i32(p);
        r.skipTags();
      }
      w.str(str(r) ?? '');
    },
    response(r, w) {
      w.i32(r.i32()).i16(r.i16()).i32(r.i32());
      const topics = r.i32();
      w.compactCount(topics);
      for (let t = 0; t < topics; t++) {
        w.compactStr(r.str());
        const partitions = r.i32();
        w.compactCount(partitions);
        for (let p = 0; p < partitions; p++) {
          w.i32(r.i32()).i16(r.i16()).raw(r.raw(8)).raw(r.raw(8)).raw(r.raw(8));
          const aborted = r.i32();
          w.compactCount(aborted);
          for (let a = 0; a < aborted; a++) w.raw(r.raw(16)).tags();
          w.i32(r.i32()).compactBytes(r.bytes()).tags();
        }
        w.tags();
      }
      w.tags();
    },
  },
};
