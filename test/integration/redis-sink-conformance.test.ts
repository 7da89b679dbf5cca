import { sinkConformance } from '../helpers/sink-conformance.ts';
import { redisHarness } from './fixtures/redis-harness.ts';

// The redis sink against a real redis-server (behind a RESP-aware fault proxy), through the real Topology.
sinkConformance(redisHarness);
