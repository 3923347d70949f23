/**
 * The in-memory log (README, Logs: the ring): per app the last `log_lines`
 * lines, at most 1 MiB of message text, of its children's output and of
 * the gateway's events about it, and as many gateway-wide lines. Fed from
 * the logger's own output (a second destination, see log.ts), so what is
 * kept is what stdout got. Nothing is written to disk.
 */

export type LogStream = 'stdout' | 'stderr' | 'gateway';

/** One kept line, as `GET /admin/logs` sends it (the time as ms here, ISO-8601 there). */
export interface LogEntry {
  /** Ingestion order across every ring: the merged view sorts by it. */
  seq: number;
  time: number;
  app: string | null;
  pid: number | null;
  stream: LogStream;
  msg: string;
  /** Bytes of `msg` (UTF-8), what the 1 MiB cap counts. */
  bytes: number;
}

/** What the byte cap counts: one app's message text. */
export const MAX_RING_BYTES = 1024 * 1024;
/** A single line longer than this is cut: one huge line must not empty a ring. */
const MAX_LINE_BYTES = 16 * 1024;
/** A logged JSON line longer than this is not kept at all. */
const MAX_INGEST_CHARS = 1024 * 1024;

/** A bounded FIFO of lines: by count and by message bytes. */
export class LineRing {
  private items: Array<LogEntry | undefined>;
  private head = 0;
  private count = 0;
  bytes = 0;

  constructor(
    private maxLines: number,
    private readonly maxBytes = MAX_RING_BYTES,
  ) {
    this.items = new Array(maxLines);
  }

  get size(): number {
    return this.count;
  }

  push(entry: LogEntry): void {
    while (this.count > 0 && (this.count >= this.maxLines || this.bytes + entry.bytes > this.maxBytes)) this.shift();
    if (this.maxLines === 0) return;
    this.items[(this.head + this.count) % this.maxLines] = entry;
    this.count++;
    this.bytes += entry.bytes;
  }

  /** The last `n` lines, oldest first. */
  tail(n: number): LogEntry[] {
    const take = Math.min(n, this.count);
    const out: LogEntry[] = new Array(take);
    for (let i = 0; i < take; i++) out[i] = this.items[(this.head + this.count - take + i) % this.maxLines] as LogEntry;
    return out;
  }

  /** A new line limit (a reload changed `log_lines`): the newest lines are kept. */
  resize(maxLines: number): void {
    const kept = this.tail(maxLines);
    this.maxLines = maxLines;
    this.items = new Array(maxLines);
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
    for (const entry of kept) this.push(entry);
  }

  private shift(): void {
    const entry = this.items[this.head] as LogEntry;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.maxLines;
    this.count--;
    this.bytes -= entry.bytes;
  }
}

export type LogListener = (entry: LogEntry) => void;

interface Follower {
  /** null: every line. */
  app: string | null;
  listener: LogListener;
}

/** Parsed fields of a pino JSON line that the ring reads. */
interface PinoLine {
  time?: number;
  msg?: unknown;
  app?: unknown;
  pid?: unknown;
  stream?: unknown;
  kind?: unknown;
  added?: unknown;
  changed?: unknown;
  removed?: unknown;
  failed?: unknown;
}

/** Every app's ring and the gateway-wide one, and the followers of `GET /admin/logs?follow=1`. */
export class LogRing {
  private readonly apps = new Map<string, LineRing>();
  private readonly gateway: LineRing;
  private readonly followers = new Set<Follower>();
  private seq = 0;

  constructor(private maxLines = 1000) {
    this.gateway = new LineRing(maxLines);
  }

  get followerCount(): number {
    return this.followers.size;
  }

  /** `[gateway] log_lines` changed. */
  setLimit(maxLines: number): void {
    if (maxLines === this.maxLines) return;
    this.maxLines = maxLines;
    this.gateway.resize(maxLines);
    for (const ring of this.apps.values()) ring.resize(maxLines);
  }

  /** Apps that are gone lose their ring, so that memory follows the apps that exist. */
  retain(apps: Iterable<string>): void {
    const keep = new Set(apps);
    for (const name of this.apps.keys()) if (!keep.has(name)) this.apps.delete(name);
  }

  /**
   * One JSON line as the logger wrote it. Access lines are not kept (they
   * are per request, and the access log is for that); a reload's result
   * goes to the ring of every app it names as well.
   */
  ingest(line: string): void {
    // Far past what a ring keeps of one line: not worth parsing (stdout's buffer drops such lines too).
    if (line.length > MAX_INGEST_CHARS || line.includes('"kind":"access"')) return;
    let parsed: PinoLine;
    try {
      parsed = JSON.parse(line) as PinoLine;
    } catch {
      return;
    }
    const msg = typeof parsed.msg === 'string' ? parsed.msg : '';
    const app = typeof parsed.app === 'string' ? parsed.app : null;
    const stream: LogStream = parsed.stream === 'stdout' || parsed.stream === 'stderr' ? parsed.stream : 'gateway';
    const pid = typeof parsed.pid === 'number' ? parsed.pid : null;
    const time = typeof parsed.time === 'number' ? parsed.time : Date.now();
    this.add(time, app, pid, stream, msg);
    if (app === null && msg.startsWith('reload finished')) {
      for (const name of namedApps(parsed)) this.add(time, name, null, 'gateway', msg, true);
    }
  }

  /** The last `n` lines of one app (undefined: no such ring), or of everything merged in time order. */
  lines(app: string | null, n: number): LogEntry[] {
    if (app !== null) return this.apps.get(app)?.tail(n) ?? [];
    const all = [this.gateway, ...this.apps.values()].flatMap((ring) => ring.tail(n));
    all.sort((a, b) => a.seq - b.seq);
    return dedupe(all).slice(-n);
  }

  hasApp(app: string): boolean {
    return this.apps.has(app);
  }

  /** Calls `listener` with each new line (of `app`, or every line); returns the unsubscribe. */
  follow(app: string | null, listener: LogListener): () => void {
    const follower: Follower = { app, listener };
    this.followers.add(follower);
    return () => this.followers.delete(follower);
  }

  /** Bytes of message text kept in every ring, for the memory measurement. */
  get bytes(): number {
    let total = this.gateway.bytes;
    for (const ring of this.apps.values()) total += ring.bytes;
    return total;
  }

  private add(
    time: number,
    app: string | null,
    pid: number | null,
    stream: LogStream,
    msg: string,
    copy = false,
  ): void {
    // Cut by characters first, so a long message is never copied whole.
    const cut = msg.length > MAX_LINE_BYTES;
    let text = cut ? msg.slice(0, MAX_LINE_BYTES) : msg;
    let bytes = Buffer.byteLength(text);
    if (cut || bytes > MAX_LINE_BYTES) {
      text = `${Buffer.from(text).subarray(0, MAX_LINE_BYTES).toString('utf8')}…`;
      bytes = Buffer.byteLength(text);
    }
    // A reload's copy in an app ring shares the original's seq: the merged view shows it once.
    const entry: LogEntry = { seq: copy ? this.seq : ++this.seq, time, app, pid, stream, msg: text, bytes };
    let ring = this.gateway;
    if (app !== null) {
      ring = this.apps.get(app) as LineRing;
      if (ring === undefined) {
        ring = new LineRing(this.maxLines);
        this.apps.set(app, ring);
      }
    }
    ring.push(entry);
    if (this.followers.size === 0) return;
    // A copy goes to the followers of its app only: a follower of everything had the original.
    for (const follower of this.followers) {
      if (!(copy ? follower.app === app : follower.app === null || follower.app === app)) continue;
      try {
        follower.listener(entry);
      } catch {
        // One broken reader must not stop the others, nor the log write.
      }
    }
  }
}

function namedApps(line: PinoLine): string[] {
  const names = new Set<string>();
  for (const list of [line.added, line.changed, line.removed]) {
    if (Array.isArray(list)) for (const name of list) if (typeof name === 'string') names.add(name);
  }
  if (Array.isArray(line.failed)) {
    for (const f of line.failed)
      if (f && typeof (f as { name?: unknown }).name === 'string') names.add((f as { name: string }).name);
  }
  return [...names];
}

function dedupe(entries: LogEntry[]): LogEntry[] {
  const out: LogEntry[] = [];
  for (const entry of entries) if (out.at(-1)?.seq !== entry.seq) out.push(entry);
  return out;
}

/** A kept line as the admin API sends it: one NDJSON object. */
export function entryJson(entry: LogEntry): string {
  return JSON.stringify({
    time: new Date(entry.time).toISOString(),
    app: entry.app,
    pid: entry.pid,
    stream: entry.stream,
    msg: entry.msg,
  });
}
