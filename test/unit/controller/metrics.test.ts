// The event-loop delay metric (issue 7): a stall stays visible in /metrics after it happened,
// where prom-client's own nodejs_eventloop_lag_* gauges are reset at every scrape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../../src/controller/metrics.ts';

test('ocisource_event_loop_delay_seconds reports the worst stall since start; pools are reported', async () => {
  const m = new Metrics();
  m.observeTransport({ pools: 3 });
  // The monitor samples every 100 ms; its first samples come after start-up's own stalls.
  await new Promise((r) => setTimeout(r, 250));
  const until = performance.now() + 400;
  while (performance.now() < until); // a stall of 400 ms
  // The monitor samples every 100 ms: a couple of samples after the stall have recorded it.
  await new Promise((r) => setTimeout(r, 250));
  const worst = () => Number(/^ocisource_event_loop_delay_seconds\{quantile="1"\} (\S+)$/m.exec(text)?.[1]);
  let text = await m.registry.metrics();
  assert.ok(worst() >= 0.25, `worst delay ${worst()} s`);
  assert.match(text, /^ocisource_registry_connection_pools 3$/m);
  text = await m.registry.metrics();
  assert.ok(worst() >= 0.25, 'still there at the next scrape');
  m.eventLoopDelay.disable();
});
