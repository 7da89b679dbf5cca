import { z } from 'zod';
import { defineSink } from '../core/component.ts';
import type { Event } from '../core/event.ts';

export const consoleSink = defineSink({
  kind: 'sink',
  type: 'console',
  description: 'Writes events to standard output (or standard error), one per line.',
  options: z.object({
    encoding: z
      .enum(['json', 'text'])
      .default('json')
      .describe('`json`: one JSON object per line; `text`: the `message` field only.'),
    target: z.enum(['stdout', 'stderr']).default('stdout').describe('Which stream to write to.'),
  }),
  example: `sinks:
  alerts: { type: console, inputs: [only_errors], encoding: json }`,
  build(options) {
    const stream = options.target === 'stdout' ? process.stdout : process.stderr;
    const encode =
      options.encoding === 'json' ? (e: Event) => JSON.stringify(e) : (e: Event) => String(e.message ?? '');
    return {
      write(events) {
        let out = '';
        for (const e of events) out += `${encode(e)}\n`;
        // Resolves once the stream took the bytes: a slow terminal or a full pipe pushes back on the pipeline.
        return new Promise<void>((resolve, reject) => {
          stream.write(out, (error) => (error ? reject(error) : resolve()));
        });
      },
      async stop() {},
    };
  },
});
