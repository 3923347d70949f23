import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { type AppTraffic, DURATION_BUCKETS, emptyTraffic, type TrafficSnapshot } from '../dataplane/stats.js';
import type { AppJson, CertificateJson, WorkerJson } from '../wire.js';

/** What the metrics page is made from: plain data from the data plane and the control plane. */
export interface MetricsSource {
  /** Traffic counters by app, for the gateway's life. */
  traffic(): TrafficSnapshot;
  /** Children started again after a crash or a failed start, by app, for the gateway's life. */
  restarts(): ReadonlyMap<string, number>;
  /** Children replaced by the memory watchdog, by app, for the gateway's life. */
  memoryReplacements(): ReadonlyMap<string, number>;
  apps(): AppJson[];
  reloadCounts(): { ok: number; partial: number; invalid: number };
  certificates(): CertificateJson[];
  acmeOrders(): { ok: number; failed: number };
  /** Open `GET /admin/logs?follow=1` streams. */
  logFollowers(): number;
  /** The proxy workers; [] with `workers = 1`. */
  workers(): WorkerJson[];
}

const NO_TRAFFIC: AppTraffic = emptyTraffic();

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}

/**
 * Renders the Prometheus text format (version 0.0.4). Counters come from
 * the per-app stats kept for the gateway's life, so they survive reloads;
 * gauges describe the apps running now.
 */
export class MetricsRenderer {
  private readonly loopDelay: IntervalHistogram;

  constructor(private readonly source: MetricsSource) {
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
  }

  close(): void {
    this.loopDelay.disable();
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const traffic = this.source.traffic();
    const statuses = this.source.apps();
    const restarts = this.source.restarts();
    // Every app the gateway has known has its series: counters live for the gateway's life, and an
    // app that never served (its start failed) shows zeros.
    const names = new Set([...Object.keys(traffic), ...statuses.map((a) => a.name), ...restarts.keys()]);
    const stats = [...names].map((name) => [name, traffic[name] ?? NO_TRAFFIC] as const);

    metric('nano_requests_total', 'counter', 'Requests answered, by app and status class.');
    for (const [app, s] of stats) {
      for (let cls = 1; cls <= 5; cls++)
        out.push(`nano_requests_total{app="${label(app)}",class="${cls}xx"} ${s.statusClasses[cls] ?? 0}`);
    }

    metric('nano_request_duration_seconds', 'histogram', 'Time from request to the end of the response, by app.');
    for (const [app, s] of stats) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((bound, i) => {
        cumulative += s.durationCounts[i] ?? 0;
        out.push(`nano_request_duration_seconds_bucket{app="${label(app)}",le="${bound}"} ${cumulative}`);
      });
      out.push(`nano_request_duration_seconds_bucket{app="${label(app)}",le="+Inf"} ${s.requests}`);
      out.push(`nano_request_duration_seconds_sum{app="${label(app)}"} ${num(s.durationSumSeconds)}`);
      out.push(`nano_request_duration_seconds_count{app="${label(app)}"} ${s.requests}`);
    }

    metric(
      'nano_upstream_errors_total',
      'counter',
      "The gateway's own error answers for an app, by status: 502 bad gateway, 503 not ready, 504 timeout.",
    );
    for (const [app, s] of stats) {
      for (const kind of [502, 503, 504] as const)
        out.push(`nano_upstream_errors_total{app="${label(app)}",kind="${kind}"} ${s.upstreamErrors[kind]}`);
    }

    metric('nano_restarts_total', 'counter', 'Children started again after a crash or a failed start, by app.');
    for (const [app] of stats) out.push(`nano_restarts_total{app="${label(app)}"} ${restarts.get(app) ?? 0}`);

    metric(
      'nano_memory_replacements_total',
      'counter',
      'Children replaced by the memory watchdog (over max_rss_mb), by app; also counted in nano_restarts_total.',
    );
    const replacements = this.source.memoryReplacements();
    for (const [app] of stats)
      out.push(`nano_memory_replacements_total{app="${label(app)}"} ${replacements.get(app) ?? 0}`);

    metric('nano_children_up', 'gauge', 'Ready children, by app.');
    for (const app of statuses) {
      out.push(`nano_children_up{app="${label(app.name)}"} ${app.instances.filter((i) => i.state === 'ready').length}`);
    }
    metric('nano_child_rss_bytes', 'gauge', 'Resident memory of all children of an app.');
    for (const app of statuses) {
      out.push(
        `nano_child_rss_bytes{app="${label(app.name)}"} ${app.instances.reduce((sum, i) => sum + i.rss_bytes, 0)}`,
      );
    }

    metric(
      'nano_reloads_total',
      'counter',
      'Config reloads by result: ok, partial (some apps failed to start), invalid (config rejected).',
    );
    for (const [result, n] of Object.entries(this.source.reloadCounts()))
      out.push(`nano_reloads_total{result="${result}"} ${n}`);

    metric('nano_certificate_expiry_timestamp_seconds', 'gauge', "When each host's certificate expires (Unix time).");
    for (const cert of this.source.certificates()) {
      if (cert.not_after !== null)
        out.push(
          `nano_certificate_expiry_timestamp_seconds{host="${label(cert.host)}"} ${Date.parse(cert.not_after) / 1000}`,
        );
    }
    metric('nano_acme_orders_total', 'counter', 'ACME certificate orders by result.');
    const orders = this.source.acmeOrders();
    out.push(
      `nano_acme_orders_total{result="ok"} ${orders.ok}`,
      `nano_acme_orders_total{result="failed"} ${orders.failed}`,
    );

    metric('nano_log_followers', 'gauge', 'Open GET /admin/logs?follow=1 streams.');
    out.push(`nano_log_followers ${this.source.logFollowers()}`);

    const workers = this.source.workers();
    if (workers.length > 0) {
      metric('nano_workers_up', 'gauge', 'Proxy workers listening (README, Workers).');
      out.push(`nano_workers_up ${workers.filter((w) => w.state === 'ready').length}`);
      metric('nano_worker_restarts_total', 'counter', 'Proxy workers replaced after they died.');
      out.push(`nano_worker_restarts_total ${workers.reduce((sum, w) => sum + w.restarts, 0)}`);
      metric('nano_worker_rss_bytes', 'gauge', 'Resident memory of each proxy worker.');
      for (const w of workers) out.push(`nano_worker_rss_bytes{worker="${w.id}"} ${w.rss_bytes}`);
    }

    metric('nano_gateway_rss_bytes', 'gauge', 'Resident memory of the gateway process.');
    out.push(`nano_gateway_rss_bytes ${process.memoryUsage.rss()}`);

    metric(
      'nano_event_loop_lag_seconds',
      'gauge',
      'Event loop delay of the gateway since the last scrape: mean and 99th percentile.',
    );
    const mean = this.loopDelay.count > 0 ? this.loopDelay.mean / 1e9 : 0;
    const p99 = this.loopDelay.count > 0 ? this.loopDelay.percentile(99) / 1e9 : 0;
    out.push(
      `nano_event_loop_lag_seconds{stat="mean"} ${num(mean)}`,
      `nano_event_loop_lag_seconds{stat="p99"} ${num(p99)}`,
    );
    this.loopDelay.reset();

    return `${out.join('\n')}\n`;
  }
}
