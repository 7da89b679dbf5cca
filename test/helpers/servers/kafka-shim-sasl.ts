import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * The broker side of Kafka's SASL, for the shim in front of librdkafka's mock cluster (which has none): PLAIN
 * (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), as a broker with one user configured answers them.
 * The client's half is @platformatic/kafka's own; this half is written from the RFCs, so a login that passes
 * here passes an exchange each side computed on its own.
 */

export interface SaslUser {
  readonly username: string;
  readonly password: string;
  /** The mechanisms the broker enables (a Kafka listener's sasl.enabled.mechanisms). */
  readonly mechanisms: readonly ('PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512')[];
}

/** One SaslAuthenticate step's outcome: bytes to send back, whether the login is complete, or why it failed. */
export type SaslStep = { bytes: Buffer; done: boolean } | { error: string };

/** One connection's login: built at SaslHandshake with the mechanism the client asked for. */
export interface SaslSession {
  step(authBytes: Buffer): SaslStep;
}

const ITERATIONS = 4096;

export function saslSession(user: SaslUser, mechanism: string): SaslSession | undefined {
  if (!(user.mechanisms as readonly string[]).includes(mechanism)) return undefined;
  if (mechanism === 'PLAIN') {
    return {
      step(authBytes) {
        // authzid NUL authcid NUL passwd
        const [, name, password] = authBytes.toString('utf8').split('\0');
        return name === user.username && password === user.password
          ? { bytes: Buffer.alloc(0), done: true }
          : { error: `Authentication failed: Invalid username or password` };
      },
    };
  }
  const hash = mechanism === 'SCRAM-SHA-512' ? 'sha512' : 'sha256';
  const size = hash === 'sha512' ? 64 : 32;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(user.password, salt, ITERATIONS, size, hash);
  const hmac = (key: Buffer, text: string) => createHmac(hash, key).update(text).digest();
  const storedKey = createHash(hash).update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  let first: { bare: string; server: string; nonce: string } | undefined;
  // What Kafka's broker answers to a wrong user or password.
  const refused = `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`;
  const fields = (text: string) => new Map(text.split(',').map((kv) => [kv.slice(0, 1), kv.slice(2)] as const));
  return {
    step(authBytes) {
      const text = authBytes.toString('utf8');
      if (first === undefined) {
        // gs2-header ("n,," : no channel binding, no authzid), then n=user,r=client nonce
        if (!text.startsWith('n,,')) return { error: `SCRAM: unsupported gs2 header in "${text.slice(0, 20)}"` };
        const bare = text.slice(3);
        const f = fields(bare);
        if (f.get('n') !== user.username) return { error: refused };
        const nonce = `${f.get('r') ?? ''}${randomBytes(18).toString('base64')}`;
        const server = `r=${nonce},s=${salt.toString('base64')},i=${ITERATIONS}`;
        first = { bare, server, nonce };
        return { bytes: Buffer.from(server), done: false };
      }
      const at = text.lastIndexOf(',p=');
      if (at < 0) return { error: 'SCRAM: the client-final message has no proof' };
      const withoutProof = text.slice(0, at);
      const f = fields(withoutProof);
      if (f.get('r') !== first.nonce) return { error: 'SCRAM: the nonce does not match' };
      const authMessage = `${first.bare},${first.server},${withoutProof}`;
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.from(text.slice(at + 3), 'base64');
      if (proof.length !== size) return { error: 'SCRAM: a proof of the wrong length' };
      const clientKey = Buffer.alloc(size);
      for (let i = 0; i < size; i++) clientKey[i] = proof[i]! ^ signature[i]!;
      const check = createHash(hash).update(clientKey).digest();
      if (!timingSafeEqual(check, storedKey)) return { error: refused };
      return { bytes: Buffer.from(`v=${hmac(serverKey, authMessage).toString('base64')}`), done: true };
    },
  };
}
