import { buffers } from './buffers/index.ts';
import { createRegistry } from './core/pipeline-config.ts';
import { blackholeSink } from './sinks/blackhole.ts';
import { clickhouseSink } from './sinks/clickhouse.ts';
import { consoleSink } from './sinks/console.ts';
import { fileSink, fileSinkOptions, fileSinkOptionsShape, stagedFileSink } from './sinks/file.ts';
import { forwardSink } from './sinks/forward.ts';
import { httpSink } from './sinks/http.ts';
import { kafkaSink } from './sinks/kafka.ts';
import { natsSink } from './sinks/nats.ts';
import { postgresSink } from './sinks/postgres.ts';
import { redisSink } from './sinks/redis.ts';
import { s3Sink } from './sinks/s3.ts';
import { fileSource } from './sources/file.ts';
import { forwardSource } from './sources/forward.ts';
import { generatorSource } from './sources/generator.ts';
import { httpSource } from './sources/http.ts';
import { natsSource } from './sources/nats.ts';
import { otlpSource } from './sources/otlp.ts';
import { redisSource } from './sources/redis.ts';
import { relpSource } from './sources/relp.ts';
import { socketSource } from './sources/socket.ts';
import { stdinSource } from './sources/stdin.ts';
import { syslogSource } from './sources/syslog.ts';
import { dedupeTransform } from './transforms/dedupe.ts';
import { filterTransform } from './transforms/filter.ts';
import { parseTransform } from './transforms/parse.ts';
import { remapTransform } from './transforms/remap.ts';
import { routeTransform } from './transforms/route.ts';
import { sampleTransform } from './transforms/sample.ts';
import { throttleTransform } from './transforms/throttle.ts';

/** Every component type and buffer kind Fluxo knows. Adding a component is one line here. */
export const registry = createRegistry(
  [
    socketSource,
    stdinSource,
    syslogSource,
    httpSource,
    generatorSource,
    forwardSource,
    otlpSource,
    fileSource,
    relpSource,
    natsSource,
    redisSource,
    filterTransform,
    parseTransform,
    remapTransform,
    routeTransform,
    sampleTransform,
    dedupeTransform,
    throttleTransform,
    consoleSink,
    blackholeSink,
    clickhouseSink,
    fileSink,
    forwardSink,
    httpSink,
    kafkaSink,
    natsSink,
    postgresSink,
    redisSink,
    // The file sink's staging with an S3 committer (components never import each other).
    s3Sink({ shape: fileSinkOptionsShape, schema: fileSinkOptions, build: stagedFileSink }),
  ],
  buffers,
);
