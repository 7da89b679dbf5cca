import { z } from 'zod';

/**
 * The `auth` block of a client sink that authenticates with a token or a user and password (http today;
 * the stream and database sinks take the same block):
 *
 *   auth: { strategy: bearer, token: "${TOKEN}" }   or   auth: { strategy: basic, user: fluxo, password: "${PASSWORD}" }
 */
export function clientAuthOption() {
  return z
    .discriminatedUnion(
      'strategy',
      [
        z
          .object({
            strategy: z.literal('bearer').describe('`bearer`: `Authorization: Bearer <token>`.'),
            token: z.string().min(1).describe('The token (use `${ENV_VAR}` to keep it out of the file).'),
          })
          .strict(),
        z
          .object({
            strategy: z.literal('basic').describe('`basic`: HTTP basic authentication.'),
            user: z.string().min(1).describe('User name.'),
            password: z.string().describe('Password (use `${ENV_VAR}`).'),
          })
          .strict(),
      ],
      { error: 'expected auth with strategy: bearer (token) or basic (user, password)' },
    )
    .optional()
    .describe('Authentication: `{ strategy: bearer, token }` or `{ strategy: basic, user, password }`.');
}

export type ClientAuth = NonNullable<z.infer<ReturnType<typeof clientAuthOption>>>;

/** The HTTP `Authorization` header value of `auth`. */
export function authorizationHeader(auth: ClientAuth): string {
  if (auth.strategy === 'bearer') return `Bearer ${auth.token}`;
  return `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
}

/** A URL with its password replaced by `***`, for logs and the banner; the text itself when it is no URL. */
export function redactUrl(uri: string): string {
  try {
    const url = new URL(uri);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return uri;
  }
}
