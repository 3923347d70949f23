/**
 * Logs (SPEC §11): the log ring through `GET /admin/logs` (bounds, reloads,
 * crashes, the merged view, follow and its followers), `GET /admin/reloads`,
 * and `nano-gateway logs` against real gateways with real children writing
 * lines (the fixture's /say, /yell and /crash?yell=).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { appColour } from '../src/cli/logs.js';
import type { ReloadRecordJson } from '../src/wire.js';
import {
  adminCall,
  adminGatewaySection,
  CLI,
  fixtureApp,
  freePort,
  GatewayProcess,
  type RunResult,
  runCli,
  waitFor,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;
delete process.env.FORCE_COLOR;
delete process.env.NO_COLOR;

interface LogJson {
  time: string;
  app: string | null;
  pid: number | null;
  stream: 'stdout' | 'stderr' | 'gateway';
  msg: string;
}

type ReloadJson = ReloadRecordJson;

const TIME = String.raw`\d\d:\d\d:\d\d\.\d{3}`;

function ndjson(text: string): LogJson[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogJson);
}

async function getLogs(port: number, query: string, token?: string): Promise<LogJson[]> {
  const reply = await adminCall(port, 'GET', `/admin/logs?${query}`, token === undefined ? {} : { token });
  assert.equal(reply.status, 200, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/x-ndjson/);
  return ndjson(reply.body);
}

/** Waits until the app's ring has a line matching `match`; returns the ring. */
function waitForRing(port: number, app: string, match: (l: LogJson) => boolean, token?: string): Promise<LogJson[]> {
  return waitFor(
    async () => {
      const lines = await getLogs(port, `app=${app}&lines=10000`, token);
      return lines.some(match) ? lines : undefined;
    },
    `a line in the ring of ${app}`,
    15_000,
  );
}

async function followerGauge(port: number): Promise<number> {
  const reply = await adminCall(port, 'GET', '/admin/metrics');
  const match = /^nano_log_followers (\d+)$/m.exec(reply.body);
  assert.ok(match, 'nano_log_followers is exported');
  return Number(match[1]);
}

function waitForFollowers(port: number, count: number): Promise<true> {
  return waitFor(
    async () => (await followerGauge(port)) === count || undefined,
    `nano_log_followers = ${count}`,
    15_000,
  );
}

/** The child writes lines through the gateway: `/say` to stdout, `/yell` to stderr. */
async function say(gw: GatewayProcess, host: string, what: 'say' | 'yell', query: string): Promise<number> {
  const reply = await gw.request({ host, path: encodeURI(`/${what}?${query}`) });
  assert.equal(reply.status, 200, reply.body);
  return (JSON.parse(reply.body) as { pid: number }).pid;
}

/** An open `GET /admin/logs?follow=1`: the lines received so far. */
interface Follow {
  res: http.IncomingMessage;
  lines: LogJson[];
  text: () => string;
  close: () => void;
}

function openFollow(port: number, query: string): Promise<Follow> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/admin/logs?follow=1&${query}`, agent: false }, (res) => {
      let text = '';
      const follow: Follow = {
        res,
        lines: [],
        text: () => text,
        close: () => req.destroy(),
      };
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop() as string;
        for (const line of parts) if (line) follow.lines.push(JSON.parse(line) as LogJson);
      });
      res.on('error', () => {});
      resolve(follow);
    });
    req.on('error', reject);
  });
}

/** A `nano-gateway` process that keeps running (`logs -f`). */
interface LiveCli {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnCli(args: string[], env: Record<string, string> = {}): LiveCli {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { proc, stdout: () => stdout, stderr: () => stderr, exit };
}

/** Waits for a live CLI's exit, killing it if it has not exited in `ms`. */
async function exitWithin(cli: LiveCli, ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const timer = setTimeout(() => cli.proc.kill('SIGKILL'), ms);
  try {
    return await cli.exit;
  } finally {
    clearTimeout(timer);
  }
}

/** stderr is exactly one non-empty line. */
function oneLine(stderr: string): string {
  assert.ok(stderr.endsWith('\n'), `stderr ends with a newline: ${JSON.stringify(stderr)}`);
  const lines = stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr is one line: ${JSON.stringify(stderr)}`);
  assert.ok((lines[0] as string).startsWith('nano-gateway: '), lines[0]);
  return lines[0] as string;
}

function assertUsage(res: RunResult, pattern: RegExp): void {
  assert.equal(res.code, 2, res.stderr);
  assert.match(oneLine(res.stderr), pattern);
}

describe('the log ring over HTTP', () => {
  let small: GatewayProcess;
  let smallAdmin: number;
  let gw: GatewayProcess;
  let admin: number;

  before(async () => {
    [small, gw] = await Promise.all([
      GatewayProcess.start({
        config: `${adminGatewaySection('log_lines = 5', 'token = "t0k"')}\n${fixtureApp('a', ['a.test'])}`,
      }),
      GatewayProcess.start({
        config: `${adminGatewaySection()}\n${fixtureApp('a', ['a.test'])}\n${fixtureApp('b', ['b.test'])}`,
      }),
    ]);
    [smallAdmin, admin] = await Promise.all([small.adminPort(), gw.adminPort()]);
  });

  after(async () => {
    await Promise.all([small?.cleanup(), gw?.cleanup()]);
  });

  test('bounded by log_lines: of 20 lines written, the last 5; a reload of log_lines resizes', async () => {
    await say(small, 'a.test', 'say', 'text=line&count=20');
    const ring = await waitForRing(smallAdmin, 'a', (l) => l.msg === 'line 20', 't0k');
    assert.deepEqual(
      ring.map((l) => l.msg),
      ['line 16', 'line 17', 'line 18', 'line 19', 'line 20'],
    );
    assert.ok(ring.every((l) => l.app === 'a' && l.stream === 'stdout' && typeof l.pid === 'number'));
    assert.ok(
      ring.every((l) => !Number.isNaN(Date.parse(l.time)) && l.time.endsWith('Z')),
      'ISO-8601 times',
    );
    const two = await getLogs(smallAdmin, 'app=a&lines=2', 't0k');
    assert.deepEqual(
      two.map((l) => l.msg),
      ['line 19', 'line 20'],
    );
    // The gateway-wide ring has the same bound.
    assert.ok((await getLogs(smallAdmin, 'lines=1000', 't0k')).filter((l) => l.app === null).length <= 5);

    const reloads = small.reloadsEnded().length;
    small.writeConfig(small.readConfig().replace('log_lines = 5', 'log_lines = 3'));
    await small.waitForReloads(reloads + 1);
    const three = await getLogs(smallAdmin, 'app=a&lines=100', 't0k');
    assert.deepEqual(
      three.map((l) => l.msg),
      ['line 18', 'line 19', 'line 20'],
    );
  });

  test('with a token: 401 without it, for plain and followed logs', async () => {
    for (const query of ['app=a', 'follow=1', 'app=nope']) {
      const reply = await adminCall(smallAdmin, 'GET', `/admin/logs?${query}`);
      assert.equal(reply.status, 401, query);
      assert.equal(reply.json?.error?.code, 'unauthorized');
      const wrong = await adminCall(smallAdmin, 'GET', `/admin/logs?${query}`, { token: 'wrong' });
      assert.equal(wrong.status, 401, query);
    }
    assert.equal((await adminCall(smallAdmin, 'GET', '/admin/logs?app=a', { token: 't0k' })).status, 200);
  });

  test('unknown app: 404 with the error JSON; a bad lines: 400', async () => {
    const reply = await adminCall(admin, 'GET', '/admin/logs?app=nope');
    assert.equal(reply.status, 404);
    assert.match(String(reply.headers['content-type']), /^application\/json/);
    assert.equal(reply.json?.error?.code, 'not_found');
    assert.match(reply.json?.error?.message, /nope/);
    const followed = await adminCall(admin, 'GET', '/admin/logs?app=nope&follow=1');
    assert.equal(followed.status, 404);
    for (const lines of ['abc', '-1', '1.5']) {
      const bad = await adminCall(admin, 'GET', `/admin/logs?app=a&lines=${lines}`);
      assert.equal(bad.status, 400, lines);
      assert.equal(bad.json?.error?.code, 'invalid_request');
    }
  });

  test('lines from before a reload are still there after it, with the reload result', async () => {
    const oldPid = await say(gw, 'a.test', 'say', 'text=before the reload');
    await waitForRing(admin, 'a', (l) => l.msg === 'before the reload');
    const reply = await (async () => {
      gw.writeConfig(gw.readConfig().replace('[apps.a]\n', '[apps.a]\nenv = { VERSION = "2" }\n'));
      const reloads = gw.reloadsEnded().length;
      const r = await adminCall(admin, 'POST', '/admin/reload');
      await gw.waitForReloads(reloads + 1);
      return r;
    })();
    assert.equal(reply.status, 200, reply.body);
    assert.deepEqual(reply.json.changed, ['a']);
    const ring = await waitForRing(admin, 'a', (l) => l.msg.startsWith('reload finished'));
    const before = ring.find((l) => l.msg === 'before the reload');
    assert.ok(before, 'the old child line survived the reload');
    assert.equal(before.pid, oldPid);
    const result = ring.find((l) => l.msg.startsWith('reload finished')) as LogJson;
    assert.equal(result.stream, 'gateway');
    assert.equal(result.pid, null);
    assert.ok(ring.indexOf(result) > ring.indexOf(before));
    const newPid = gw.readyPids('a').at(-1);
    assert.notEqual(newPid, oldPid);
    assert.ok(
      ring.some((l) => l.pid === newPid && l.msg === 'instance ready'),
      "the new child's start is there too",
    );
    // b was not named by the reload: no copy of its result in b's ring.
    const b = await getLogs(admin, 'app=b&lines=1000');
    assert.ok(!b.some((l) => l.msg.startsWith('reload finished')));
  });

  test("a crashed child's last stderr lines are in its app's ring", async () => {
    const readyBefore = gw.readyLogs('a').length;
    const pid = await say(gw, 'a.test', 'yell', 'text=first complaint');
    const reply = await gw.request({ host: 'a.test', path: encodeURI('/crash?yell=last words before the crash') });
    assert.equal(reply.status, 200);
    await waitFor(() => gw.readyLogs('a').length > readyBefore || undefined, 'a restarted', 15_000);
    const ring = await waitForRing(admin, 'a', (l) => l.msg === 'last words before the crash');
    const own = ring.filter((l) => l.pid === pid);
    const complaint = own.findIndex((l) => l.msg === 'first complaint');
    const words = own.findIndex((l) => l.msg === 'last words before the crash');
    assert.ok(complaint !== -1 && words > complaint, JSON.stringify(own));
    assert.equal(own[words]?.stream, 'stderr');
    const exited = own.findIndex((l) => l.stream === 'gateway' && l.msg === 'instance exited unexpectedly');
    assert.ok(exited > words, "the gateway's crash line comes after the child's last words");
  });

  test('the merged view: every app and the gateway, in time order', async () => {
    await say(gw, 'b.test', 'say', 'text=merged from b');
    await waitForRing(admin, 'b', (l) => l.msg === 'merged from b');
    const all = await getLogs(admin, 'lines=100000');
    const times = all.map((l) => Date.parse(l.time));
    for (let i = 1; i < times.length; i++) assert.ok((times[i] as number) >= (times[i - 1] as number), `line ${i}`);
    assert.ok(
      all.some((l) => l.app === null && l.msg.startsWith('listening on')),
      'gateway-wide lines (app null) are in',
    );
    assert.ok(all.some((l) => l.app === 'a'));
    assert.ok(all.some((l) => l.app === 'b' && l.msg === 'merged from b'));
    assert.equal(all.filter((l) => l.msg.startsWith('reload finished')).length, 1, 'a reload result once');
    const last3 = await getLogs(admin, 'lines=3');
    assert.deepEqual(last3, all.slice(-3));
    // Default: 100 lines.
    assert.equal((await getLogs(admin, '')).length, Math.min(100, all.length));
  });

  test('follow=1 streams the lines the child writes after the request started', async () => {
    const follow = await openFollow(admin, 'app=b&lines=0');
    try {
      assert.equal(follow.res.statusCode, 200);
      assert.match(String(follow.res.headers['content-type']), /^application\/x-ndjson/);
      await say(gw, 'a.test', 'say', 'text=not for the follower of b');
      const pid = await say(gw, 'b.test', 'say', 'text=written after the follow started');
      await waitFor(
        () => follow.lines.some((l) => l.msg === 'written after the follow started') || undefined,
        'the followed line',
      );
      const line = follow.lines.find((l) => l.msg === 'written after the follow started');
      assert.deepEqual(Object.keys(line ?? {}), ['time', 'app', 'pid', 'stream', 'msg']);
      assert.equal(line?.app, 'b');
      assert.equal(line?.pid, pid);
      assert.equal(line?.stream, 'stdout');
      assert.ok(
        follow.lines.every((l) => l.app === 'b'),
        'only b',
      );
    } finally {
      follow.close();
    }
  });

  test('closing the client frees the follower: 100 opened and closed, the gauge back to 0', async () => {
    await waitForFollowers(admin, 0);
    const follows = await Promise.all(
      Array.from({ length: 100 }, (_, i) => openFollow(admin, i % 2 === 0 ? 'app=a&lines=1' : 'lines=1')),
    );
    try {
      await waitForFollowers(admin, 100);
    } finally {
      for (const f of follows) f.close();
    }
    await waitForFollowers(admin, 0);
  });

  test('a follower that stops reading costs at most 1 MiB: lines past it are skipped and counted', async (t) => {
    const follow = await openFollow(admin, 'app=a&lines=0');
    try {
      follow.res.pause();
      // 40000 lines of 400 bytes: 16 MB, far more than the socket buffers take.
      await say(gw, 'a.test', 'say', 'text=flood&count=40000&bytes=400');
      await waitForRing(admin, 'a', (l) => l.msg.startsWith('flood 40000.'));
      follow.res.resume();
      // Once the reader has caught up, it is told how many lines it missed.
      const skippedLine = / lines? skipped: this reader fell behind$/;
      await waitFor(() => follow.lines.some((l) => skippedLine.test(l.msg)) || undefined, 'the notice', 15_000);
      await say(gw, 'a.test', 'say', 'text=after the flood');
      await waitFor(() => follow.lines.some((l) => l.msg === 'after the flood') || undefined, 'the line after', 15_000);
      const notices = follow.lines.filter((l) => skippedLine.test(l.msg));
      assert.ok(notices.length > 0, 'a notice says how many lines were skipped');
      for (const notice of notices) assert.deepEqual([notice.stream, notice.app, notice.pid], ['gateway', 'a', null]);
      const skipped = notices.reduce((n, notice) => n + Number.parseInt(notice.msg, 10), 0);
      const delivered = follow.lines.filter((l) => l.msg.startsWith('flood ')).length;
      assert.ok(skipped > 0 && delivered > 0, `${delivered} delivered, ${skipped} skipped`);
      t.diagnostic(`a paused follower of 40000 lines of 400 bytes: ${delivered} delivered, ${skipped} skipped`);
      assert.equal(delivered + skipped, 40000, 'every line delivered or counted');
      assert.equal(follow.lines.at(-1)?.msg, 'after the flood');
    } finally {
      follow.close();
    }
    await waitForFollowers(admin, 0);
  });
});

describe('GET /admin/reloads', () => {
  let gw: GatewayProcess;
  let admin: number;

  before(async () => {
    gw = await GatewayProcess.start({ config: `${adminGatewaySection()}\n${fixtureApp('a', ['a.test'])}` });
    admin = await gw.adminPort();
  });

  after(async () => {
    await gw?.cleanup();
  });

  async function reloads(): Promise<ReloadJson[]> {
    const reply = await adminCall(admin, 'GET', '/admin/reloads');
    assert.equal(reply.status, 200, reply.body);
    return (reply.json as { reloads: ReloadJson[] }).reloads;
  }

  /** Waits until one of the records after the first `from` (newest first) matches; returns it and the list. */
  function waitForRecord(
    from: number,
    match: (r: ReloadJson) => boolean,
  ): Promise<{ record: ReloadJson; index: number; list: ReloadJson[] }> {
    return waitFor(
      async () => {
        const list = await reloads();
        const index = list.slice(0, list.length - from).findIndex(match);
        return index === -1 ? undefined : { record: list[index] as ReloadJson, index, list };
      },
      'a reload recorded',
      20_000,
    );
  }

  test('a file reload, an admin reload and a restart: newest first, with trigger and result', async () => {
    const start = (await reloads()).length;
    gw.writeConfig(`${gw.readConfig()}\n${fixtureApp('b', ['b.test'])}`);
    await waitForRecord(start, (r) => r.trigger === 'file' && r.added.includes('b'));
    const admined = await adminCall(admin, 'POST', '/admin/reload');
    assert.equal(admined.status, 200, admined.body);
    await waitForRecord(start, (r) => r.trigger === 'admin');
    const restarted = await adminCall(admin, 'POST', '/admin/apps/a/restart');
    assert.equal(restarted.status, 200, restarted.body);
    const { list } = await waitForRecord(start, (r) => r.trigger === 'restart');
    const fresh = list.slice(0, list.length - start);
    const restart = fresh.findIndex((r) => r.trigger === 'restart');
    const adminReload = fresh.findIndex((r) => r.trigger === 'admin');
    const file = fresh.findIndex((r) => r.trigger === 'file' && r.added.includes('b'));
    assert.ok(restart === 0 && adminReload > restart && file > adminReload, JSON.stringify(fresh));
    const [r, a, f] = [fresh[restart], fresh[adminReload], fresh[file]] as [ReloadJson, ReloadJson, ReloadJson];
    assert.deepEqual(
      { trigger: f.trigger, result: f.result, added: f.added, unchanged: f.unchanged, error: f.error },
      { trigger: 'file', result: 'ok', added: ['b'], unchanged: ['a'], error: null },
    );
    assert.deepEqual(
      { trigger: a.trigger, result: a.result, added: a.added },
      { trigger: 'admin', result: 'ok', added: [] },
    );
    assert.deepEqual([...a.unchanged].sort(), ['a', 'b'], 'a reload that changes nothing is recorded too');
    assert.deepEqual(
      { trigger: r.trigger, result: r.result, changed: r.changed, unchanged: r.unchanged },
      { trigger: 'restart', result: 'ok', changed: ['a'], unchanged: ['b'] },
    );
    for (const record of [r, a, f]) {
      assert.ok(record.at.endsWith('Z') && !Number.isNaN(Date.parse(record.at)), record.at);
      assert.ok(Number.isInteger(record.ms) && record.ms >= 0);
      assert.deepEqual(record.failed, []);
      assert.deepEqual(record.removed, []);
    }
    assert.ok(Date.parse(r.at) >= Date.parse(a.at));
    assert.ok(Date.parse(a.at) >= Date.parse(f.at));
  });

  test('an invalid config is recorded as invalid with its error', async () => {
    const good = gw.readConfig();
    let start = (await reloads()).length;
    gw.writeConfig(`${good}\n[apps.c]\nhosts = "not an array"\n`);
    const { record: invalid } = await waitForRecord(start, (r) => r.result === 'invalid');
    assert.equal(invalid.trigger, 'file');
    assert.match(invalid.error ?? '', /apps\.c/);
    assert.deepEqual([invalid.added, invalid.changed, invalid.unchanged, invalid.failed], [[], [], [], []]);
    start = (await reloads()).length;
    const rejected = await adminCall(admin, 'POST', '/admin/reload');
    assert.equal(rejected.status, 400);
    const { record: byAdmin } = await waitForRecord(start, (r) => r.trigger === 'admin');
    assert.deepEqual([byAdmin.result, byAdmin.error], ['invalid', rejected.json?.error?.message]);
    start = (await reloads()).length;
    gw.writeConfig(good);
    const { record: fixed } = await waitForRecord(start, (r) => r.trigger === 'file');
    assert.deepEqual([fixed.result, fixed.error], ['ok', null]);
  });

  test('at most 50 are kept, the newest', async () => {
    for (let i = 0; i < 55; i++) {
      const reply = await adminCall(admin, 'POST', '/admin/reload');
      assert.equal(reply.status, 200, reply.body);
    }
    const list = await reloads();
    assert.equal(list.length, 50);
    assert.ok(list.every((r) => r.trigger === 'admin' && r.result === 'ok'));
    for (let i = 1; i < list.length; i++)
      assert.ok(Date.parse(list[i - 1]?.at as string) >= Date.parse(list[i]?.at as string), 'newest first');
  });
});

describe('nano-gateway logs', () => {
  let gw: GatewayProcess;
  let admin: number;
  let url: string;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${adminGatewaySection()}\n${fixtureApp('a', ['a.test'])}\n${fixtureApp('b', ['b.test'])}`,
    });
    admin = await gw.adminPort();
    url = `127.0.0.1:${admin}`;
  });

  after(async () => {
    await gw?.cleanup();
  });

  test("logs APP: the app's lines, TIME APP[PID] out|err|gw MESSAGE, no colour off a terminal", async () => {
    const pid = await say(gw, 'a.test', 'say', 'text=cli line&count=3');
    await say(gw, 'a.test', 'yell', 'text=cli complaint');
    await waitForRing(admin, 'a', (l) => l.msg === 'cli complaint');
    const res = await runCli(['logs', 'a', '--admin', url]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.ok(!res.stdout.includes('\x1b['), 'no colour codes when stdout is not a terminal');
    const lines = res.stdout.trimEnd().split('\n');
    for (const line of lines) assert.match(line, new RegExp(`^${TIME} a(\\[\\d+\\])? (out|err|gw) `));
    for (const i of [1, 2, 3])
      assert.ok(
        lines.some((l) => l.endsWith(` a[${pid}] out cli line ${i}`)),
        `line ${i}`,
      );
    assert.match(lines.at(-1) as string, new RegExp(`^${TIME} a\\[${pid}\\] err cli complaint$`));
    assert.ok(
      lines.some((l) => / a\[\d+\] gw instance ready$/.test(l)),
      'gateway events about the app',
    );
    // The time is local wall-clock time.
    const [hh, mm] = (lines.at(-1) as string).split(':').map(Number);
    const now = new Date();
    const apart = Math.abs((hh as number) * 60 + (mm as number) - (now.getHours() * 60 + now.getMinutes()));
    assert.ok(Math.min(apart, 1440 - apart) <= 2, `local time: ${lines.at(-1)}`);

    const two = await runCli(['logs', 'a', '-n', '2', '--admin', url]);
    assert.equal(two.code, 0, two.stderr);
    const twoLines = two.stdout.trimEnd().split('\n');
    assert.equal(twoLines.length, 2);
    assert.ok(twoLines[0]?.endsWith('out cli line 3'));
  });

  test('logs without an app: every app and the gateway ("gateway" for gateway-wide lines)', async () => {
    await say(gw, 'b.test', 'say', 'text=from b');
    await waitForRing(admin, 'b', (l) => l.msg === 'from b');
    const res = await runCli(['logs', '--lines', '1000', '--admin', url]);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.ok(lines.some((l) => new RegExp(`^${TIME} gateway gw listening on http://`).test(l)));
    assert.ok(lines.some((l) => / a\[\d+\] out /.test(l)));
    assert.ok(lines.some((l) => / b\[\d+\] out from b$/.test(l)));
    // A gateway line about an app without a pid: just the app's name.
    assert.ok(
      lines.some((l) => new RegExp(`^${TIME} a gw `).test(l)),
      'APP without [PID]',
    );
  });

  test('colour: one per app, stderr marked red, with FORCE_COLOR; none with NO_COLOR', async () => {
    const res = await runCli(['logs', '--admin', url, '-n', '1000'], { env: { FORCE_COLOR: '1' } });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.includes(`\x1b[${appColour('a')}ma[`), 'a in its colour');
    assert.ok(res.stdout.includes(`\x1b[${appColour('b')}mb[`), 'b in its colour');
    assert.notEqual(appColour('a'), 31);
    assert.equal(appColour('a'), appColour('a'));
    assert.ok(res.stdout.includes('\x1b[31merr\x1b[0m'), 'stderr lines marked in red');
    const none = await runCli(['logs', '--admin', url], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
    assert.equal(none.code, 0, none.stderr);
    assert.ok(!none.stdout.includes('\x1b['), 'NO_COLOR wins');
  });

  test('--json prints the NDJSON lines', async () => {
    const res = await runCli(['logs', 'a', '--json', '--admin', url, '-n', '50']);
    assert.equal(res.code, 0, res.stderr);
    const lines = ndjson(res.stdout);
    assert.ok(lines.length > 0 && lines.length <= 50);
    for (const line of lines) {
      assert.deepEqual(Object.keys(line), ['time', 'app', 'pid', 'stream', 'msg']);
      assert.equal(line.app, 'a');
    }
  });

  test('logs -f prints a line written after it started; SIGINT exits 0', async () => {
    await waitForFollowers(admin, 0);
    const cli = spawnCli(['logs', 'a', '-f', '-n', '0', '--admin', url]);
    try {
      await waitForFollowers(admin, 1);
      const pid = await say(gw, 'a.test', 'say', 'text=followed by the cli');
      await waitFor(() => cli.stdout().includes('followed by the cli') || undefined, 'the followed line');
      assert.match(cli.stdout(), new RegExp(`^${TIME} a\\[${pid}\\] out followed by the cli\n$`));
      cli.proc.kill('SIGINT');
      const exit = await exitWithin(cli);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.equal(cli.stderr(), '');
    } finally {
      cli.proc.kill('SIGKILL');
    }
    await waitForFollowers(admin, 0);
  });

  test('unknown app: one line, exit 1', async () => {
    const res = await runCli(['logs', 'nope', '--admin', url]);
    assert.equal(res.code, 1);
    assert.equal(oneLine(res.stderr), 'nano-gateway: no app named "nope"');
    assert.equal(res.stdout, '');
    const followed = await runCli(['logs', 'nope', '-f', '--admin', url]);
    assert.equal(followed.code, 1);
    assert.equal(oneLine(followed.stderr), 'nano-gateway: no app named "nope"');
  });

  test('usage errors exit 2; --help names the command', async () => {
    assertUsage(await runCli(['logs', '-n', 'abc']), /--lines: expected a whole number, got "abc"/);
    assertUsage(await runCli(['logs', '--lines=-3']), /--lines: expected a whole number, got "-3"/);
    assertUsage(await runCli(['logs', '-n', '1.5']), /--lines: expected a whole number/);
    assertUsage(await runCli(['logs', 'a', 'b']), /unexpected argument "b"/);
    assertUsage(await runCli(['status', '-n', '5']), /--lines goes with the logs command/);
    assertUsage(await runCli(['status', '-f']), /--follow goes with the logs command/);
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /nano-gateway logs \[APP\] \[-n N\] \[-f\] \[--json\]/);
    assert.match(help.stdout, /-f, --follow/);
  });

  test('no gateway running: one line, exit 1', async () => {
    const port = await freePort();
    for (const args of [[], ['-f']]) {
      const res = await runCli(['logs', ...args, '--admin', `127.0.0.1:${port}`]);
      assert.equal(res.code, 1, res.stderr);
      assert.match(oneLine(res.stderr), /connection refused/);
      assert.equal(res.stdout, '');
    }
  });
});

describe('nano-gateway logs -f when the gateway goes away', () => {
  test('the gateway killed during -f: one line, exit 1', async () => {
    const gw = await GatewayProcess.start({ config: `${adminGatewaySection()}\n${fixtureApp('a', ['a.test'])}` });
    const admin = await gw.adminPort();
    const cli = spawnCli(['logs', '-f', '--admin', `127.0.0.1:${admin}`]);
    try {
      await waitForFollowers(admin, 1);
      await waitFor(() => cli.stdout().includes('instance ready') || undefined, 'the recent lines');
      await gw.kill();
      const exit = await exitWithin(cli);
      assert.deepEqual(exit, { code: 1, signal: null });
      assert.equal(oneLine(cli.stderr()), `nano-gateway: the gateway went away (http://127.0.0.1:${admin})`);
    } finally {
      cli.proc.kill('SIGKILL');
      await gw.cleanup();
    }
  });

  test('the admin listener moved by a reload: the follower is told, the gateway keeps running', async () => {
    const gw = await GatewayProcess.start({ config: `${adminGatewaySection()}\n${fixtureApp('a', ['a.test'])}` });
    const admin = await gw.adminPort();
    const clis = Array.from({ length: 3 }, () => spawnCli(['logs', '-f', '-n', '0', '--admin', `127.0.0.1:${admin}`]));
    try {
      await waitForFollowers(admin, 3);
      const next = await freePort();
      const reloads = gw.reloadsEnded().length;
      gw.writeConfig(
        gw.readConfig().replace('[admin]\nlisten = "127.0.0.1:0"', `[admin]\nlisten = "127.0.0.1:${next}"`),
      );
      assert.ok(gw.readConfig().includes(`[admin]\nlisten = "127.0.0.1:${next}"`));
      await gw.waitForReloads(reloads + 1);
      for (const cli of clis) {
        const exit = await exitWithin(cli);
        assert.deepEqual(exit, { code: 1, signal: null });
        assert.match(oneLine(cli.stderr()), /the gateway went away/);
      }
      // Lines logged while the old listener closed (the reload's result among them) did not bring it down.
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(gw.running, `the gateway is still running: ${gw.stderr}`);
      assert.equal((await adminCall(next, 'GET', '/admin/health')).status, 200);
      assert.ok(!gw.logs.some((l) => l.msg === 'uncaught exception'));
    } finally {
      for (const cli of clis) cli.proc.kill('SIGKILL');
      await gw.cleanup();
    }
  });
});
