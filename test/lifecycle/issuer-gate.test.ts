import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DEFAULT_BACKOFF } from '../../src/lifecycle/backoff.js';
import { IssuerGate } from '../../src/lifecycle/refresher/issuer-gate.js';

const backoff = { ...DEFAULT_BACKOFF, jitter: 0 };

/** Start as many refreshes as the gate allows at `now`, finishing each at once. */
function drain(gate: IssuerGate, now: number): number {
  let started = 0;
  while (gate.canStart(now)) {
    gate.take(now);
    gate.done();
    started++;
  }
  return started;
}

describe('issuer gate', () => {
  it('a token bucket: a burst, then the rate, never more', () => {
    const gate = new IssuerGate({ concurrency: 100, ratePerSecond: 4, burst: 2, backoff }, 0);
    assert.equal(drain(gate, 0), 2, 'the burst');
    assert.equal(gate.readyAt(0), 250, 'the next token, a quarter second later');
    assert.equal(drain(gate, 249), 0);
    assert.equal(drain(gate, 250), 1);
    // Over ten seconds of asking every 10 ms, the rate and nothing above it.
    let started = 0;
    for (let t = 260; t <= 10_250; t += 10) started += drain(gate, t);
    assert.equal(started, 40);
    // A quiet spell refills no more than the burst.
    assert.equal(drain(gate, 60_000), 2);
  });

  it('a concurrency cap, freed as refreshes finish', () => {
    const gate = new IssuerGate({ concurrency: 2, ratePerSecond: 1000, burst: 1000, backoff }, 0);
    gate.take(0);
    gate.take(0);
    assert.equal(gate.canStart(0), false);
    assert.equal(gate.readyAt(0), Number.POSITIVE_INFINITY, 'only a finishing refresh frees a slot');
    gate.done();
    assert.equal(gate.canStart(0), true);
  });

  it('a Retry-After pauses it until then; an outage pauses it with backoff, one step per pause', () => {
    const gate = new IssuerGate({ concurrency: 8, ratePerSecond: 100, burst: 100, backoff }, 0);
    gate.pauseUntil(3000);
    assert.equal(gate.canStart(2999), false);
    assert.equal(gate.readyAt(1000), 3000);
    assert.equal(gate.canStart(3000), true);
    assert.equal(gate.failed(3000), 4000, 'first failure: initialMs');
    assert.equal(gate.failed(3500), 4000, 'refreshes failing together count once');
    assert.equal(gate.failed(4000), 6000, 'then it doubles');
    gate.succeeded();
    assert.equal(gate.failed(6000), 7000, 'a success resets it');
  });
});
