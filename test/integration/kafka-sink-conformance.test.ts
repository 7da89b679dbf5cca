import { sinkConformance } from '../helpers/sink-conformance.ts';
import { kafkaHarness } from './fixtures/kafka-harness.ts';

// The kafka sink against librdkafka's mock cluster (a Kafka-protocol broker), through the real Topology.
sinkConformance(kafkaHarness);
