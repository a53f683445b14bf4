// Writes the n8n metrics pages the daemon's tests read, with prom-client 15.1.3 (the version
// n8n 2.41.1 depends on), registering each metric exactly as n8n 2.41.1's own code does
// (npm n8n@2.41.1, dist/metrics/prometheus/*.service.js):
//   default-metrics        collectDefaultMetrics({prefix: 'n8n_'})        (on by default)
//   version-metrics        n8n_version_info{version,major,minor,patch} 1 (always)
//   active-workflow        n8n_active_workflow_count                      (always)
//   workflow-execution-duration  histogram n8n_workflow_execution_duration_seconds{status,mode} (on by default)
//   route-metrics          gauge n8n_last_activity = Unix seconds of the last /rest/, /api/, /webhook/... request
//                          (N8N_METRICS_INCLUDE_API_ENDPOINTS=true), plus express-prom-bundle's histogram
//   event-bus-metrics      counter n8n_<event name without "n8n.", dots as _>_total, created at the first event
//                          (N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true): n8n_workflow_started_total, ...
// Run: npm install prom-client@15.1.3 && node make_pages.js OUTDIR
const fs = require('fs');
const path = require('path');
const client = require('prom-client');

const out = process.argv[2] || __dirname;
const prefix = 'n8n_';
const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

async function page(name, { apiEndpoints, eventBus, steps }) {
  client.register.clear();
  client.collectDefaultMetrics({ prefix });
  new client.Gauge({ name: `${prefix}version_info`, help: 'n8n version info.', labelNames: ['version', 'major', 'minor', 'patch'] })
    .set({ version: 'v2.41.1', major: 2, minor: 41, patch: 1 }, 1);
  new client.Gauge({ name: `${prefix}active_workflow_count`, help: 'Total number of active workflows.', collect() { this.set(1); } });
  const duration = new client.Histogram({ name: `${prefix}workflow_execution_duration_seconds`,
    help: 'Workflow execution duration in seconds.', labelNames: ['status', 'mode'], buckets: DURATION_BUCKETS_SECONDS });
  let lastActivity = null;
  if (apiEndpoints) {
    lastActivity = new client.Gauge({ name: `${prefix}last_activity`, help: 'last instance activity (backend request) in Unix time (seconds).' });
    lastActivity.set(1764660000);
  }
  const counters = new Map();
  const event = (eventName) => {
    if (!eventBus) return;
    if (!counters.has(eventName)) {
      counters.set(eventName, new client.Counter({ name: `${prefix}${eventName.replace('n8n.', '').replace(/\./g, '_')}_total`,
        help: `Total number of ${eventName} events.`, labelNames: [] }));
    }
    counters.get(eventName).inc({}, 1);
  };
  for (const step of steps) {
    if (step === 'request' && lastActivity) lastActivity.set(1764660000 + 120);
    if (step === 'start') event('n8n.workflow.started');
    if (step === 'success') { event('n8n.workflow.success'); duration.observe({ status: 'success', mode: 'webhook' }, 0.42); }
    if (step === 'failed') { event('n8n.workflow.failed'); duration.observe({ status: 'failed', mode: 'trigger' }, 1.5); }
  }
  fs.writeFileSync(path.join(out, name), await client.register.metrics());
}

(async () => {
  const on = { apiEndpoints: true, eventBus: true };
  await page('fresh.prom', { ...on, steps: [] });
  await page('one-run.prom', { ...on, steps: ['request', 'start', 'success'] });
  await page('running.prom', { ...on, steps: ['request', 'start', 'success', 'start'] });
  await page('failed-run.prom', { ...on, steps: ['start', 'failed'] });
  await page('defaults-only.prom', { apiEndpoints: false, eventBus: false, steps: [] });
  await page('defaults-only-after-run.prom', { apiEndpoints: false, eventBus: false, steps: ['start', 'success'] });
})();
