import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import type { PipelineSnapshot } from '../../src/api/snapshot.ts';
import { addApiAuthOptions, apiAuthHeaders, unauthorizedHint } from '../../src/cli/api-auth.ts';
import { renderTop } from '../../src/cli/top.ts';

describe('the API credentials of fluxo top and fluxo tap', () => {
  it('builds a bearer or basic Authorization header, a token winning; none without either', () => {
    assert.deepEqual(apiAuthHeaders({ token: 't0k' }), { authorization: 'Bearer t0k' });
    assert.deepEqual(apiAuthHeaders({ user: 'ops:pa:ss' }), {
      authorization: `Basic ${Buffer.from('ops:pa:ss').toString('base64')}`,
    });
    assert.deepEqual(apiAuthHeaders({ token: 't', user: 'u:p' }), { authorization: 'Bearer t' });
    assert.deepEqual(apiAuthHeaders({}), {});
    assert.deepEqual(apiAuthHeaders({ token: '' }), {}, 'an empty $FLUXO_API_TOKEN is no token');
  });

  it('a 401 hint names the flag to give, or the one that was refused', () => {
    assert.match(unauthorizedHint({}), /give --token \(or \$FLUXO_API_TOKEN\) or --user/);
    assert.match(unauthorizedHint({ token: 'x' }), /--token or \$FLUXO_API_TOKEN given was refused/);
    assert.match(unauthorizedHint({ user: 'a:b' }), /--user given was refused/);
  });

  it('adds --token (also from $FLUXO_API_TOKEN) and --user to a command', () => {
    const parse = (argv: string[], env?: string) => {
      const saved = process.env.FLUXO_API_TOKEN;
      if (env === undefined) delete process.env.FLUXO_API_TOKEN;
      else process.env.FLUXO_API_TOKEN = env;
      try {
        const c = addApiAuthOptions(new Command('x').exitOverride());
        c.parse(argv, { from: 'user' });
        return c.opts();
      } finally {
        if (saved === undefined) delete process.env.FLUXO_API_TOKEN;
        else process.env.FLUXO_API_TOKEN = saved;
      }
    };
    assert.deepEqual(parse(['--token', 'a', '--user', 'u:p']), { token: 'a', user: 'u:p' });
    assert.deepEqual(parse([], 'from-env'), { token: 'from-env' });
  });
});

describe('fluxo top: the ledger line', () => {
  it('prints the non-zero drop causes after the total', () => {
    const snapshot: PipelineSnapshot = {
      at: 0,
      interval_ms: 1000,
      state: 'running',
      components: [],
      edges: [],
      ledger: [
        {
          source: 'web',
          accepted: 500,
          acknowledged: 400,
          in_flight: 0,
          not_acknowledged: 0,
          dead_lettered: 0,
          dropped: 120,
          drops: { buffer_full: 100, throttled: 0, udp_backlog: 0, udp_kernel: 20, partial: 0 },
          shared: false,
        },
      ],
    };
    const lines = renderTop(snapshot, { api: 'x', sort: 'graph', reverse: false, width: 300, color: false });
    assert.match(lines.at(-1)!, /dropped\s+120 \(buffer full 100, udp kernel 20\)$/);
    snapshot.ledger[0]!.dropped = 0;
    snapshot.ledger[0]!.drops = { buffer_full: 0, throttled: 0, udp_backlog: 0, udp_kernel: 0, partial: 0 };
    assert.match(
      renderTop(snapshot, { api: 'x', sort: 'graph', reverse: false, width: 300, color: false }).at(-1)!,
      /dropped\s+0$/,
    );
  });
});
