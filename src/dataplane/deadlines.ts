/**
 * `upstream_timeout_ms` on time without a Node timer per request (README,
 * Routing and proxying). undici's own headersTimeout runs on timers that
 * are coarse on purpose (a 1 s resolution, 500 ms ticks), so 2000 ms fired
 * at about 2.5 s. Here every attempt joins a list when it is sent and
 * leaves it when the response starts; one interval, running only while a
 * list is non-empty, expires what is overdue every `tickMs`.
 *
 * All attempts sent with the same timeout expire in the order they were
 * sent, so each timeout value has its own FIFO list and a sweep stops at the
 * first entry that is not due. The links live on the entries themselves:
 * joining and leaving allocate nothing and cost O(1).
 */

/** Something that can run out of time: the links are the list's, `expire` is called once when due. */
export interface Expirable {
  deadlineAt: number;
  deadlinePrev: Expirable | null;
  deadlineNext: Expirable | null;
  deadlineList: DeadlineList | null;
  expire(): void;
}

class DeadlineList {
  head: Expirable | null = null;
  tail: Expirable | null = null;
  constructor(readonly timeoutMs: number) {}
}

export interface DeadlinesOptions {
  /** How often overdue entries are looked for; an expiry comes at most this late (plus event-loop lag). */
  tickMs?: number;
  /** Milliseconds, monotonic. */
  now?: () => number;
}

export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private readonly tickMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private size = 0;

  constructor(options: DeadlinesOptions = {}) {
    this.tickMs = options.tickMs ?? 50;
    this.now = options.now ?? (() => performance.now());
  }

  /** `entry` expires `timeoutMs` from now unless `remove`d first. */
  add(entry: Expirable, timeoutMs: number): void {
    if (entry.deadlineList !== null) this.remove(entry);
    let list = this.lists.get(timeoutMs);
    if (list === undefined) {
      list = new DeadlineList(timeoutMs);
      this.lists.set(timeoutMs, list);
    }
    entry.deadlineAt = this.now() + timeoutMs;
    entry.deadlineList = list;
    entry.deadlinePrev = list.tail;
    entry.deadlineNext = null;
    if (list.tail === null) list.head = entry;
    else list.tail.deadlineNext = entry;
    list.tail = entry;
    this.size++;
    // Started by the first entry and stopped by a sweep that finds none: under load one interval serves
    // every request; below one request per tick it is armed about once per request.
    if (this.timer === null) {
      this.timer = setInterval(sweepDeadlines, this.tickMs, this);
      this.timer.unref();
    }
  }

  remove(entry: Expirable): void {
    const list = entry.deadlineList;
    if (list === null) return;
    const { deadlinePrev: prev, deadlineNext: next } = entry;
    if (prev === null) list.head = next;
    else prev.deadlineNext = next;
    if (next === null) list.tail = prev;
    else next.deadlinePrev = prev;
    entry.deadlinePrev = null;
    entry.deadlineNext = null;
    entry.deadlineList = null;
    this.size--;
  }

  /** Expires every entry that is due; called by the interval, and by tests with their own clock. */
  sweep(): void {
    const now = this.now();
    for (const [timeoutMs, list] of this.lists) {
      let entry = list.head;
      while (entry !== null && entry.deadlineAt <= now) {
        this.remove(entry);
        entry.expire();
        entry = list.head;
      }
      if (list.head === null) this.lists.delete(timeoutMs);
    }
    if (this.size === 0) this.stop();
  }

  get pending(): number {
    return this.size;
  }

  stop(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

function sweepDeadlines(deadlines: Deadlines): void {
  deadlines.sweep();
}
