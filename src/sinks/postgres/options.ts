import { z } from 'zod';
import { tlsClientOption } from '../../codecs/tls.ts';
import { duration, urlString } from '../../core/units.ts';

const column = z.union([
  z.string().min(1),
  z
    .object({
      field: z.string().min(1).describe('The event field path (`http.status`).'),
      type: z
        .string()
        .min(1)
        .default('text')
        .describe('The column type `create_table` gives it (`bigint`, `timestamptz`, `jsonb`, …).'),
    })
    .strict(),
]);

export const options = z
  .object({
    endpoint: urlString(['postgres', 'postgresql']).describe(
      'The server and database, `postgres://user@host:5432/database`. Absent parts come from the standard ' +
        '`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` variables as in psql.',
    ),
    username: z.string().min(1).optional().describe('Login role; overrides the user in `endpoint`.'),
    password: z
      .string()
      .optional()
      .describe(
        'Password; use `${PGPASSWORD}` to keep it out of the file. Absent: the one in `endpoint`, else ' +
          'PostgreSQL’s own `PGPASSWORD` variable or `~/.pgpass`. Never logged.',
      ),
    tls: tlsClientOption(),
    table: z
      .string()
      .min(1)
      .describe(
        'The target table, `table` or `schema.table` (each part as written, case kept; `"a.b"` quotes a dot). It ' +
          'needs a primary key or unique index on `id_column`: rows are inserted with `ON CONFLICT DO NOTHING`.',
      ),
    mode: z
      .enum(['columns', 'jsonb'])
      .default('columns')
      .describe(
        '`columns`: one column per entry of `columns`. `jsonb`: the whole event as JSON in `jsonb_column` (plus ' +
          'any `columns`).',
      ),
    columns: z
      .record(z.string().min(1), column)
      .default({})
      .describe(
        'Columns filled from event fields: `{ column: field }` or `{ column: { field, type } }`. Values are ' +
          'written as PostgreSQL text input (strings as they are, numbers and booleans as literals, objects and ' +
          'arrays as JSON, null or absent as NULL) and the column type checks them: a row it refuses is ' +
          'dead-lettered with PostgreSQL’s reason, the rest of its write is inserted.',
      ),
    id_column: z
      .string()
      .min(1)
      .default('_id')
      .describe('The column that holds the event `_id`, the key of `ON CONFLICT (…) DO NOTHING`.'),
    jsonb_column: z.string().min(1).default('event').describe('With `mode: jsonb`: the column of the event.'),
    copy_format: z
      .enum(['text', 'csv'])
      .default('text')
      .describe('The COPY format the rows travel in (`text`: tab-separated with backslash escapes; `csv`).'),
    create_table: z
      .boolean()
      .default(false)
      .describe(
        'Create the table at start when it does not exist: `id_column text PRIMARY KEY`, each column with its ' +
          '`type` (`text` by default), and the `jsonb_column` in jsonb mode.',
      ),
    pool_size: z
      .number()
      .int()
      .positive()
      .default(4)
      .describe('Most connections open at once; writes beyond it wait for one (keep it ≥ `concurrency`).'),
    connect_timeout: duration().default(5_000).describe('How long to wait for a connection (and its TLS and login).'),
  })
  .superRefine((o, ctx) => {
    const names = Object.keys(o.columns);
    if (o.mode === 'columns' && names.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'mode columns needs at least one column' });
    }
    if (names.includes(o.id_column)) {
      ctx.addIssue({
        code: 'custom',
        path: ['columns', o.id_column],
        message: `${o.id_column} is the id_column: it always holds the event _id`,
      });
    }
    if (o.mode === 'jsonb' && names.includes(o.jsonb_column)) {
      ctx.addIssue({
        code: 'custom',
        path: ['columns', o.jsonb_column],
        message: `${o.jsonb_column} is the jsonb_column: it holds the whole event`,
      });
    }
  });

export type PostgresSinkOptions = z.infer<typeof options>;
