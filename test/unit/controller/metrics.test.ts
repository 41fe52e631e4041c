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

test('reconcile series: counted per result and timed per object; a deleted object loses its series', async () => {
  const m = new Metrics();
  m.countReconcile('requeue_after');
  m.countReconcile('requeue_after');
  m.countReconcile('error');
  m.observeReconcile('team-a', 'one', 0.02);
  m.observeReconcile('team-a', 'one', 0.5);
  m.observeReconcile('team-a', 'two', 0.02);
  m.queue.added();
  m.queue.depth(3);
  let text = await m.registry.metrics();
  assert.match(text, /^controller_runtime_reconcile_total\{controller="ocirepository",result="requeue_after"\} 2$/m);
  assert.match(text, /^controller_runtime_reconcile_total\{controller="ocirepository",result="error"\} 1$/m);
  assert.match(text, /^ocisource_reconcile_duration_seconds_count\{kind="OCIRepository",namespace="team-a",name="one"\} 2$/m);
  assert.match(text, /^workqueue_adds_total\{name="ocirepository"\} 1$/m);
  assert.match(text, /^workqueue_depth\{name="ocirepository"\} 3$/m);
  m.forgetObject('team-a', 'one');
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /name="one"/);
  assert.match(text, /^ocisource_reconcile_duration_seconds_count\{kind="OCIRepository",namespace="team-a",name="two"\} 1$/m);
  m.observeReconcile('team-a', 'one', 0.02);
  assert.match(await m.registry.metrics(), /^ocisource_reconcile_duration_seconds_count\{kind="OCIRepository",namespace="team-a",name="one"\} 1$/m, 'a new object of the same name starts afresh');
  m.eventLoopDelay.disable();
});
