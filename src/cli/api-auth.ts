import { type Command, Option } from 'commander';

/**
 * The credentials `fluxo top` and `fluxo tap` send to an API that has `api.auth`: one place, so both commands
 * take the same flags and a change of scheme reaches both.
 */

export interface ApiAuthOptions {
  /** With `api.auth.strategy: bearer`. */
  token?: string;
  /** With `api.auth.strategy: basic`: `user:password`. */
  user?: string;
}

/** Adds `--token` (or $FLUXO_API_TOKEN) and `--user` to a command. */
export function addApiAuthOptions(command: Command): Command {
  return command
    .addOption(new Option('--token <token>', 'with api.auth strategy bearer: the token').env('FLUXO_API_TOKEN'))
    .addOption(new Option('--user <user:password>', 'with api.auth strategy basic: user and password'));
}

/** The request headers for `options`: an Authorization header, or none. A token wins over a user. */
export function apiAuthHeaders(options: ApiAuthOptions): Record<string, string> {
  if (options.token) return { authorization: `Bearer ${options.token}` };
  if (options.user) return { authorization: `Basic ${Buffer.from(options.user, 'utf8').toString('base64')}` };
  return {};
}

/** What to add to the message of a 401, so the user knows which flag was missing or wrong. */
export function unauthorizedHint(options: ApiAuthOptions): string {
  if (options.token) return ' (the --token or $FLUXO_API_TOKEN given was refused)';
  if (options.user) return ' (the --user given was refused)';
  return ' (this API has api.auth: give --token (or $FLUXO_API_TOKEN) or --user user:password)';
}
