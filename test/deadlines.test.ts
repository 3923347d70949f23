/**
 * The deadline list behind upstream_timeout_ms (src/proxy/deadlines.ts), in
 * process with a fake clock: what is due expires, in order; what left the
 * list or is not due does not; several timeout values keep their own order.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Deadlines, type Expirable } from '../src/dataplane/deadlines.js';

class Entry implements Expirable {
  deadlineAt = 0;
  deadlinePrev: Expirable | null = null;
  deadlineNext: Expirable | null = null;
  deadlineList: Expirable['deadlineList'] = null;
  constructor(
    readonly name: string,
    private readonly expired: string[],
  ) {}
  expire(): void {
    this.expired.push(this.name);
  }
}

function setup(): { deadlines: Deadlines; clock: { now: number }; expired: string[]; entry: (name: string) => Entry } {
  const clock = { now: 1_000 };
  const expired: string[] = [];
  const deadlines = new Deadlines({ now: () => clock.now, tickMs: 60_000 });
  return { deadlines, clock, expired, entry: (name) => new Entry(name, expired) };
}

describe('deadlines for upstream_timeout_ms', () => {
  test('an entry expires once its timeout has passed, not before, and only once', () => {
    const { deadlines, clock, expired, entry } = setup();
    deadlines.add(entry('a'), 1000);
    clock.now += 999;
    deadlines.sweep();
    assert.deepEqual(expired, []);
    clock.now += 1;
    deadlines.sweep();
    assert.deepEqual(expired, ['a']);
    clock.now += 5000;
    deadlines.sweep();
    assert.deepEqual(expired, ['a']);
    assert.equal(deadlines.pending, 0);
    deadlines.stop();
  });

  test('entries expire in the order they are due; one removed (its response started) never does', () => {
    const { deadlines, clock, expired, entry } = setup();
    const [a, b, c, d] = [entry('a'), entry('b'), entry('c'), entry('d')];
    deadlines.add(a, 1000);
    clock.now += 10;
    deadlines.add(b, 1000);
    deadlines.add(c, 1000);
    clock.now += 10;
    deadlines.add(d, 1000);
    deadlines.remove(b);
    deadlines.remove(b); // twice is harmless
    clock.now += 990;
    deadlines.sweep();
    assert.deepEqual(expired, ['a', 'c']);
    assert.equal(deadlines.pending, 1);
    clock.now += 10;
    deadlines.sweep();
    assert.deepEqual(expired, ['a', 'c', 'd']);
    deadlines.stop();
  });

  test('a shorter timeout (after a reload lowered it) is not held up by longer ones sent before', () => {
    const { deadlines, clock, expired, entry } = setup();
    deadlines.add(entry('long'), 60_000);
    deadlines.add(entry('short'), 100);
    clock.now += 100;
    deadlines.sweep();
    assert.deepEqual(expired, ['short']);
    clock.now += 60_000;
    deadlines.sweep();
    assert.deepEqual(expired, ['short', 'long']);
    deadlines.stop();
  });

  test('the head, the tail and a middle entry can each leave; adding again moves an entry to the end', () => {
    const { deadlines, clock, expired, entry } = setup();
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    for (const e of [a, b, c]) deadlines.add(e, 50);
    deadlines.remove(a);
    deadlines.remove(c);
    assert.equal(deadlines.pending, 1);
    deadlines.remove(b);
    assert.equal(deadlines.pending, 0);
    deadlines.add(a, 50);
    deadlines.add(b, 50);
    clock.now += 10;
    deadlines.add(a, 50); // re-armed: now after b
    clock.now += 40;
    deadlines.sweep();
    assert.deepEqual(expired, ['b']);
    clock.now += 10;
    deadlines.sweep();
    assert.deepEqual(expired, ['b', 'a']);
    deadlines.stop();
  });

  test('with the real clock and interval, an entry expires by itself', async () => {
    const expired: string[] = [];
    const deadlines = new Deadlines({ tickMs: 10 });
    deadlines.add(new Entry('x', expired), 20);
    for (let i = 0; i < 500 && expired.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(expired, ['x']);
    assert.equal(deadlines.pending, 0);
    deadlines.stop();
  });
});
