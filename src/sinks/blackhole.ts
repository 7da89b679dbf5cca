import { z } from 'zod';
import { defineSink } from '../core/component.ts';

export const blackholeSink = defineSink({
  kind: 'sink',
  type: 'blackhole',
  description: 'Counts and discards events; acknowledges at once. For benchmarks and for measuring sources.',
  options: z.object({
    print_interval: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Log the running count every N seconds (0: never).'),
  }),
  example: `sinks:
  discard: { type: blackhole, inputs: [gen] }`,
  build(options, context) {
    let count = 0;
    let timer: NodeJS.Timeout | undefined;
    return {
      async start() {
        if (options.print_interval > 0) {
          timer = setInterval(
            () => context.logger.info({ events: count }, 'blackhole count'),
            options.print_interval * 1000,
          );
          timer.unref();
        }
      },
      async send(request) {
        count += request.events.length;
        return undefined;
      },
      async stop() {
        clearInterval(timer);
      },
    };
  },
});
