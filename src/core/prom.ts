/*
 * prom-client's parts, each from its own file rather than from the package's index. The index also loads the
 * Pushgateway, which requires node:https and with it node:tls, and the cluster aggregator (node:cluster):
 * ~25 ms of CPU at every start on Node 26 for a push nobody configured. Types still come from 'prom-client'.
 */
import Counter from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';

export { Counter, collectDefaultMetrics, Gauge, Histogram, Registry };
