import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PipelineMetrics } from '../../src/core/metrics.ts';

describe('the end-to-end latency histogram', () => {
  it('renders its local counts in the Prometheus histogram format, cumulative per bound', async () => {
    const metrics = new PipelineMetrics({ defaultMetrics: false });
    const k = metrics.forComponent('k', 'sink', 'file');
    for (const v of [0.0005, 0.001, 0.02, 0.02, 0.3, 400]) k.latency.observe(v);
    const text = await metrics.registry.metrics();
    const line = (suffix: string, le?: string) => {
      const labels = `component_id="k",component_kind="sink",component_type="file"${le === undefined ? '' : `,le="${le.replace('+', '\\+')}"`}`;
      const m = new RegExp(`^fluxo_end_to_end_latency_seconds_${suffix}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
      assert.ok(m, `no ${suffix} ${le ?? ''} line in:\n${text}`);
      return Number(m[1]);
    };
    assert.match(text, /^# TYPE fluxo_end_to_end_latency_seconds histogram$/m);
    assert.equal(line('bucket', '0.001'), 2, 'a value equal to a bound counts in that bound');
    assert.equal(line('bucket', '0.01'), 2);
    assert.equal(line('bucket', '0.025'), 4);
    assert.equal(line('bucket', '0.5'), 5);
    assert.equal(line('bucket', '300'), 5);
    assert.equal(line('bucket', '+Inf'), 6);
    assert.equal(line('count'), 6);
    assert.ok(Math.abs(line('sum') - 400.3415) < 1e-9);
  });

  it('gives a replaced component (same labels) the same series, and a new one its own', async () => {
    const metrics = new PipelineMetrics({ defaultMetrics: false });
    metrics.forComponent('k', 'sink', 'file').latency.observe(0.01);
    metrics.forComponent('k', 'sink', 'file').latency.observe(0.01);
    metrics.forComponent('j', 'sink', 'file').latency.observe(0.01);
    const json = await metrics.registry.getMetricsAsJSON();
    const counts = json
      .find((m) => m.name === 'fluxo_end_to_end_latency_seconds')!
      .values.filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count'));
    assert.deepEqual(
      counts.map((v) => [v.labels.component_id, v.value]),
      [
        ['k', 2],
        ['j', 1],
      ],
    );
  });
});
