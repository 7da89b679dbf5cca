import { sinkConformance } from '../helpers/sink-conformance.ts';
import { natsHarness } from './fixtures/nats-harness.ts';

// The conformance suite against a real nats-server with JetStream (the harness names the check it cannot take).
sinkConformance(natsHarness);
