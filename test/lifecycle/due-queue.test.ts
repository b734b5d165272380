import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DueQueue, type Schedulable } from '../../src/lifecycle/due-queue.js';
import { sleep } from '../support/lifecycle-env.js';

interface Item extends Schedulable {
  name: number;
}

function item(name: number): Item {
  return { name, dueAt: Number.POSITIVE_INFINITY, queueIndex: -1 };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10);
  assert.ok(check(), what);
}

describe('DueQueue: one timer for every scheduled item', () => {
  it('fires each item once, in due order, with moves and removals honoured', async () => {
    const fired: Item[] = [];
    const queue = new DueQueue<Item>({ fire: (i) => fired.push(i) });
    const now = Date.now();
    const items = Array.from({ length: 300 }, (_, n) => item(n));
    for (const i of items) queue.schedule(i, now + 20 + Math.floor(Math.random() * 200));
    const removed = items.filter((i) => i.name % 3 === 0);
    for (const i of removed) queue.remove(i);
    // Moved later and earlier after being queued: the new time counts, not the first.
    const moved = items.filter((i) => i.name % 3 === 1 && i.name < 60);
    for (const i of moved) queue.schedule(i, now + (i.name % 2 === 0 ? 5 : 250));
    assert.equal(queue.size, 200);
    await until(() => fired.length === 200, `fired ${fired.length} of 200`);
    await sleep(50);
    assert.equal(fired.length, 200, 'nothing fires twice');
    assert.equal(queue.size, 0);
    for (const i of removed) assert.ok(!fired.includes(i), `removed item ${i.name} fired`);
    for (let n = 1; n < fired.length; n++) {
      assert.ok((fired[n - 1]?.dueAt ?? 0) <= (fired[n]?.dueAt ?? 0), 'fired out of due order');
    }
    for (const i of fired) assert.equal(i.queueIndex, -1);
    queue.close();
  });

  it('holds due items while not ready and releases them on wake', async () => {
    const fired: number[] = [];
    let ready = false;
    const queue = new DueQueue<Item>({ fire: (i) => fired.push(i.name), ready: () => ready });
    for (let n = 0; n < 5; n++) queue.schedule(item(n), Date.now() + n);
    await sleep(60);
    assert.deepEqual(fired, [], 'fired while not ready');
    assert.equal(queue.size, 5);
    ready = true;
    queue.wake();
    await until(() => fired.length === 5, `fired ${fired.length} of 5 after wake`);
    assert.deepEqual(fired, [0, 1, 2, 3, 4]);
    queue.close();
  });

  it('an item may schedule itself again from fire; close drops everything', async () => {
    let count = 0;
    const queue = new DueQueue<Item>({
      fire: (i) => {
        count++;
        if (count < 3) queue.schedule(i, Date.now() + 5);
      },
    });
    const again = item(1);
    queue.schedule(again, Date.now());
    await until(() => count === 3, `fired ${count} times`);
    const late = item(2);
    queue.schedule(late, Date.now() + 30);
    queue.close();
    await sleep(80);
    assert.equal(count, 3, 'fired after close');
    assert.equal(late.queueIndex, -1);
    // A due time beyond setTimeout's range must not fire at once (Node clamps such delays to 1 ms).
    const far = new DueQueue<Item>({ fire: () => (count += 100) });
    far.schedule(item(3), Date.now() + 40 * 24 * 3600_000);
    await sleep(30);
    assert.equal(count, 3);
    far.close();
  });
});
