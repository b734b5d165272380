import type { LifecycleEvent } from '../store/contract.js';
import { EventType } from '../store/contract.js';

/**
 * `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand: five
 * metric families do not earn a client library and its transitive dependencies.
 *
 * Counters are this instance's own work, so that a fleet's sum is right: refresh outcomes are
 * counted from the store's event log, keeping only events this process appended (`pid`).
 */

/** Upper bounds of the latency histogram, in seconds: the token API is sub-millisecond on a hit. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** What a scrape reads from the rest of the service at that moment. */
export interface MetricsSources {
  /** Credentials due for refresh now across the store (all instances' backlog). */
  dueBacklog(): Promise<number>;
  /** Open `GET /v1/events` streams on this instance. */
  openStreams(): number;
}

export type RefreshOutcome = 'refreshed' | 'transient_failure' | 'needs_login';

const OUTCOMES: Partial<Record<LifecycleEvent['type'], RefreshOutcome>> = {
  [EventType.REFRESHED]: 'refreshed',
  [EventType.REFRESH_FAILED]: 'transient_failure',
  [EventType.NEEDS_LOGIN]: 'needs_login',
};

export class ServeMetrics {
  readonly #latency = new Map<string, Histogram>();
  readonly #refreshes = new Map<string, number>();
  readonly #pid: number;
  #takeovers: () => number = () => 0;

  constructor(pid = process.pid) {
    this.#pid = pid;
  }

  /** One answered request, by route template (never the raw path: subjects are user ids). */
  observeRequest(method: string, template: string, status: number, seconds: number): void {
    const key = labels({ method, route: template, status: String(status) });
    let h = this.#latency.get(key);
    if (h === undefined) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(key, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] ?? Infinity)) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  /** Where the refresher's count of leases taken over from other instances is read. */
  countTakeoversFrom(read: () => number): void {
    this.#takeovers = read;
  }

  /** Feed every store event; those this process appended about a refresh are counted. */
  observeEvent(event: LifecycleEvent): void {
    const outcome = OUTCOMES[event.type];
    if (outcome === undefined || event.pid !== this.#pid) return;
    const key = labels({ issuer: event.issuer, outcome });
    this.#refreshes.set(key, (this.#refreshes.get(key) ?? 0) + 1);
  }

  async render(sources: MetricsSources): Promise<string> {
    const out: string[] = [];
    family(
      out,
      'latchkey_refreshes_total',
      'counter',
      'Refresh attempts by this instance, by AS issuer and outcome.',
    );
    for (const [key, n] of this.#refreshes) out.push(`latchkey_refreshes_total{${key}} ${n}`);
    family(out, 'latchkey_refresh_due_backlog', 'gauge', 'Credentials due for refresh now, store-wide.');
    out.push(`latchkey_refresh_due_backlog ${await sources.dueBacklog().catch(() => Number.NaN)}`);
    family(
      out,
      'latchkey_lease_takeovers_total',
      'counter',
      "Claims this instance's refresher took over from another instance's expired lease.",
    );
    out.push(`latchkey_lease_takeovers_total ${this.#takeovers()}`);
    family(out, 'latchkey_sse_streams', 'gauge', 'Open GET /v1/events streams on this instance.');
    out.push(`latchkey_sse_streams ${sources.openStreams()}`);
    family(
      out,
      'latchkey_http_request_duration_seconds',
      'histogram',
      'Time to answer an HTTP request, by method, route template and status.',
    );
    for (const [key, h] of this.#latency)
      histogramLines(out, 'latchkey_http_request_duration_seconds', key, h);
    return out.join('\n') + '\n';
  }
}

function family(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

function histogramLines(out: string[], name: string, key: string, h: Histogram): void {
  BUCKETS.forEach((le, i) => out.push(`${name}_bucket{${key},le="${le}"} ${h.counts[i] ?? 0}`));
  out.push(`${name}_bucket{${key},le="+Inf"} ${h.count}`);
  out.push(`${name}_sum{${key}} ${h.sum}`);
  out.push(`${name}_count{${key}} ${h.count}`);
}

/** `a="x",b="y"` with the format's escapes (backslash, quote, newline). */
function labels(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}
