/**
 * What a harness server actually saw, by kind and outcome. The lifecycle tests assert on
 * these ("exactly one refresh reached the AS", "no invalid_grant") instead of trusting the
 * client's own account of what it sent.
 *
 * A kind is e.g. a grant type (`refresh_token`) or an endpoint (`revocation`); an outcome
 * is `ok` or an OAuth error code (`invalid_grant`), or any short label the server picks.
 */
export class Counters {
  readonly #counts = new Map<string, Map<string, number>>();

  /** Record one occurrence. Servers call this; tests read. */
  record(kind: string, outcome: string): void {
    let outcomes = this.#counts.get(kind);
    if (outcomes === undefined) {
      outcomes = new Map();
      this.#counts.set(kind, outcomes);
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }

  /** How many `kind` events were seen, all outcomes together or only `outcome`. */
  count(kind: string, outcome?: string): number {
    const outcomes = this.#counts.get(kind);
    if (outcomes === undefined) return 0;
    if (outcome !== undefined) return outcomes.get(outcome) ?? 0;
    let total = 0;
    for (const n of outcomes.values()) total += n;
    return total;
  }

  /** A plain copy, `{ kind: { outcome: n } }`, for assertion messages and debugging. */
  snapshot(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [kind, outcomes] of this.#counts) out[kind] = Object.fromEntries(outcomes);
    return out;
  }

  reset(): void {
    this.#counts.clear();
  }
}
