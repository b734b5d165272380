import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  backoffDelayMs,
  DEFAULT_BACKOFF,
  nextAttemptAllowedAt,
  THROTTLED,
} from '../../src/lifecycle/backoff.js';
import { SingleFlight } from '../../src/lifecycle/single-flight.js';
import { parseRetryAfter } from '../../src/oauth/token-error.js';

describe('backoff', () => {
  const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

  it('grows exponentially and is capped', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffDelayMs(n, noJitter)),
      [1000, 2000, 4000, 8000],
    );
    assert.equal(backoffDelayMs(50, noJitter), DEFAULT_BACKOFF.maxMs);
  });

  it('lets a blocked caller retry once per demand interval, but never before a Retry-After', () => {
    const at = 10_000;
    const retrying = {
      state: 'retrying' as const,
      failures: 5,
      nextAttemptAt: at + 30_000,
      lastError: { code: 'REFRESH_TRANSIENT', message: 'x', at },
    };
    assert.equal(nextAttemptAllowedAt(retrying, false, DEFAULT_BACKOFF), at + 30_000);
    assert.equal(nextAttemptAllowedAt(retrying, true, DEFAULT_BACKOFF), at + 1000);
    const throttled = { ...retrying, lastError: { ...retrying.lastError, code: THROTTLED } };
    assert.equal(nextAttemptAllowedAt(throttled, true, DEFAULT_BACKOFF), at + 30_000);
    assert.equal(nextAttemptAllowedAt({ state: 'valid', failures: 0 }, true, DEFAULT_BACKOFF), 0);
  });

  it('parses Retry-After seconds and dates', () => {
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter(new Date(61_000).toUTCString(), 1000), 60_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
  });
});

describe('single-flight', () => {
  it('shares one run among concurrent callers and starts fresh afterwards', async () => {
    const flights = new SingleFlight<number>();
    let runs = 0;
    const work = async (): Promise<number> => {
      runs++;
      await new Promise((r) => setTimeout(r, 10));
      return runs;
    };
    const results = await Promise.all(Array.from({ length: 25 }, () => flights.run('k', work)));
    assert.deepEqual(new Set(results), new Set([1]));
    assert.equal(flights.size, 0);
    assert.equal(await flights.run('k', work), 2);
  });

  it('keeps keys apart and shares failures', async () => {
    const flights = new SingleFlight<string>();
    const failing = flights.run('a', () => Promise.reject(new Error('nope')));
    const other = flights.run('b', async () => 'ok');
    await assert.rejects(Promise.all([failing, flights.run('a', async () => 'not run')]), /nope/);
    assert.equal(await other, 'ok');
  });
});
