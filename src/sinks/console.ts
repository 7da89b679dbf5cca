import { z } from 'zod';
import { defineSink } from '../core/component.ts';
import { encodingOf, encodingOptions } from '../core/sink/index.ts';

export const consoleSink = defineSink({
  kind: 'sink',
  type: 'console',
  description: 'Writes events to standard output (or standard error), one per line.',
  options: z.object({
    ...encodingOptions(['ndjson', 'text'], { codec: 'ndjson', aliases: { json: 'ndjson' } }),
    target: z.enum(['stdout', 'stderr']).default('stdout').describe('Which stream to write to.'),
  }),
  example: `sinks:
  alerts: { type: console, inputs: [only_errors], encoding: ndjson }`,
  build(options) {
    const stream = options.target === 'stdout' ? process.stdout : process.stderr;
    return {
      encoding: encodingOf(options),
      send(request, signal) {
        // Resolves once the stream took the bytes: a slow terminal or a full pipe pushes back on the pipeline.
        // An abort (shutdown) stops waiting; the bytes may still reach the stream, which at-least-once allows.
        return new Promise((resolve, reject) => {
          const onAbort = () => reject(signal.reason);
          signal.addEventListener('abort', onAbort, { once: true });
          stream.write(request.payload(), (error) => {
            signal.removeEventListener('abort', onAbort);
            if (error) reject(error);
            else resolve(undefined);
          });
        });
      },
      async stop() {},
    };
  },
});
