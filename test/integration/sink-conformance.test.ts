import { sinkConformance } from '../helpers/sink-conformance.ts';
import {
  blackholeHarness,
  consoleHarness,
  fileHarness,
  forwardHarness,
  httpHarness,
} from './fixtures/sink-harnesses.ts';

// Every sink, against a real destination, through the real Topology. A new sink adds its harness and one line.
sinkConformance(blackholeHarness);
sinkConformance(consoleHarness);
sinkConformance(fileHarness);
sinkConformance(forwardHarness);
sinkConformance(httpHarness);
