/**
 * The retry policy (README, Routing and proxying: retries), in process: the
 * real data plane with a fake engine in place of undici, the way undici's
 * own tests swap its inner client. Each attempt the request path makes is
 * recorded and answered by a script: refused, reset, a response, or a
 * response that starts and then breaks. Real client sockets on loopback.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { pino } from 'pino';
import type { EngineHooks, ProxyEngine, UpstreamFailureKind } from '../src/dataplane/engine.js';
import { LocalDataPlane } from '../src/dataplane/local-data-plane.js';
import type { ProxyRequest } from '../src/dataplane/request.js';
import { type FailedAttempt, retryAction } from '../src/dataplane/retry.js';
import type { RouteTableData } from '../src/routing/table.js';

/** What the fake child does with one attempt. */
type Step =
  | { fail: UpstreamFailureKind; bodyRead?: boolean }
  | { respond: number }
  /** Headers go out, then the child's connection breaks. */
  | { breakAfterHeaders: true };

class FakeEngine implements ProxyEngine {
  readonly name = 'fake';
  readonly attempts: Array<{ upstream: string; method: string }> = [];
  script: Step[] = [];

  constructor(private readonly hooks: EngineHooks) {}

  forward(request: ProxyRequest): void {
    const upstream = request.upstream?.id ?? '?';
    this.attempts.push({ upstream, method: request.req.method ?? '' });
    const step = this.script.shift() ?? { respond: 200 };
    const res = request.res as http.ServerResponse;
    // As an engine would, from the I/O callback of a later turn.
    setImmediate(() => {
      if ('fail' in step) {
        if (step.bodyRead) request.req.resume();
        this.hooks.onFailure(request, {
          kind: step.fail,
          bodyConsumed: step.bodyRead === true,
          error: new Error(step.fail),
        });
      } else if ('respond' in step) {
        this.hooks.onResponseStart(request);
        res.writeHead(step.respond, { 'content-type': 'text/plain' });
        res.end(`from ${upstream}`);
      } else {
        this.hooks.onResponseStart(request);
        res.writeHead(200, { 'content-type': 'text/plain' });
        // The headers and the first bytes are on the wire before the child goes away.
        res.write('partial', () => res.destroy(new Error('child went away')));
      }
    });
  }

  upgrade(): void {
    throw new Error('no upgrades in these tests');
  }

  cancel(): void {}
  closeUpstream(): void {}
  close(): void {}
}

function table(version: number, upstreams: string[]): RouteTableData {
  return {
    version,
    defaultApp: 'app',
    apps: [
      {
        name: 'app',
        hosts: ['app.test'],
        upstreams: upstreams.map((id, i) => ({ id, host: '127.0.0.1', port: 1 + i })),
        tls: false,
      },
    ],
  };
}

interface Reply {
  status: number;
  body: string;
  error?: string;
}

function send(port: number, method: string, body?: string): Promise<Reply> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: '/',
        // Explicit: Node frames no body on a GET unless told its length.
        headers: {
          host: 'app.test',
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (err) => resolve({ status: res.statusCode ?? 0, body: text, error: err.message }));
      },
    );
    req.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
    req.end(body);
  });
}

describe('retry policy through the request path (fake engine)', () => {
  let plane: LocalDataPlane;
  let engine: FakeEngine;
  let port = 0;

  before(async () => {
    const logger = pino({ level: 'silent' });
    plane = new LocalDataPlane({
      logger,
      accessLogger: logger,
      settings: {
        upstreamTimeoutMs: 5_000,
        queueTimeoutMs: 3_000,
        trustedProxies: [],
        accessLog: false,
        redirectHttp: false,
        hstsMaxAge: 0,
      },
      engine: (hooks) => {
        engine = new FakeEngine(hooks);
        return engine;
      },
    });
    port = ((await plane.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo).port;
  });

  beforeEach(() => {
    plane.publish(table(1, ['a#1', 'a#2']));
    engine.attempts.length = 0;
    engine.script = [];
  });

  after(async () => {
    await plane.close(0);
  });

  test('refused (nothing reached the child): the request moves to the other instance', async () => {
    engine.script = [{ fail: 'refused' }];
    const reply = await send(port, 'GET');
    assert.equal(reply.status, 200);
    const [first, second] = engine.attempts;
    assert.equal(engine.attempts.length, 2);
    assert.notEqual(first?.upstream, second?.upstream, 'the second attempt went to the other instance');
    assert.equal(reply.body, `from ${second?.upstream}`);
  });

  test('a refused POST moves too: nothing of it reached the child', async () => {
    engine.script = [{ fail: 'refused' }];
    const reply = await send(port, 'POST', 'payload');
    assert.equal(reply.status, 200);
    assert.deepEqual(
      engine.attempts.map((a) => a.method),
      ['POST', 'POST'],
    );
  });

  test('refused by every instance: the request waits for the next table, then goes to the new child', async () => {
    // Each instance gets its try, and the first one a second (a refusal moves the request on until
    // there have been more refusals than instances); then it waits.
    engine.script = [{ fail: 'refused' }, { fail: 'refused' }, { fail: 'refused' }];
    let answered = false;
    const pending = send(port, 'GET').finally(() => (answered = true));
    // The last refusal is reported a turn after its attempt; then the request waits.
    while (engine.attempts.length < 3) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, 'no answer while every instance refuses');
    assert.equal(engine.attempts.length, 3);
    assert.deepEqual(new Set(engine.attempts.map((a) => a.upstream)), new Set(['a#1', 'a#2']));
    plane.publish(table(2, ['a#3']));
    const reply = await pending;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'from a#3');
  });

  test('reset on a GET (it may have reached the child): sent again once, to another instance', async () => {
    engine.script = [{ fail: 'reset' }];
    const reply = await send(port, 'GET');
    assert.equal(reply.status, 200);
    assert.equal(engine.attempts.length, 2);
    assert.notEqual(engine.attempts[0]?.upstream, engine.attempts[1]?.upstream);
  });

  test('reset twice on a GET: 502 after one resend, not a third attempt', async () => {
    engine.script = [{ fail: 'reset' }, { fail: 'reset' }];
    const reply = await send(port, 'GET');
    assert.equal(reply.status, 502);
    assert.match(reply.body, /app "app" refused or reset the connection/);
    assert.equal(engine.attempts.length, 2);
  });

  test('reset on a POST: 502 at once, never sent again', async () => {
    engine.script = [{ fail: 'reset' }];
    const reply = await send(port, 'POST', 'payload');
    assert.equal(reply.status, 502);
    assert.equal(engine.attempts.length, 1);
  });

  test('reset on a GET whose body was read: 502, not sent again (the body cannot be replayed)', async () => {
    engine.script = [{ fail: 'reset', bodyRead: true }];
    const reply = await send(port, 'GET', 'a body on a GET');
    assert.equal(reply.status, 502);
    assert.equal(engine.attempts.length, 1);
  });

  test('the counters the data plane reports are plain data, and count what the client got', async () => {
    const before = plane.stats().app?.requests ?? 0;
    assert.equal((await send(port, 'GET')).status, 200);
    const stats = plane.stats();
    assert.deepEqual(structuredClone(stats), stats);
    assert.equal(stats.app?.requests, before + 1);
  });

  test('a timeout is answered 504 and not sent again', async () => {
    engine.script = [{ fail: 'timeout' }];
    const reply = await send(port, 'GET');
    assert.equal(reply.status, 504);
    assert.match(reply.body, /sent no response within 5000 ms/);
    assert.equal(engine.attempts.length, 1);
  });

  test('a response that started and then broke: no retry, no made-up status, the connection is cut', async () => {
    engine.script = [{ breakAfterHeaders: true }];
    const reply = await send(port, 'GET');
    assert.equal(reply.status, 200, 'the child’s own status reached the client');
    assert.ok(reply.error !== undefined, 'the client saw the response cut short');
    assert.equal(engine.attempts.length, 1);
  });
});

describe('retry policy as a table', () => {
  const attempt = (overrides: Partial<FailedAttempt>): FailedAttempt => ({
    failure: { kind: 'reset', bodyConsumed: false, error: new Error('x') },
    method: 'GET',
    isUpgrade: false,
    refusals: 0,
    resends: 0,
    instances: 2,
    ...overrides,
  });

  test('refused: move while an instance has not refused, then wait', () => {
    const refused = { kind: 'refused' as const, bodyConsumed: false, error: new Error('x') };
    assert.equal(retryAction(attempt({ failure: refused, refusals: 1 })), 'move');
    assert.equal(retryAction(attempt({ failure: refused, refusals: 2 })), 'move');
    assert.equal(retryAction(attempt({ failure: refused, refusals: 3 })), 'wait');
  });

  test('reset: resend idempotent methods once; never POST, never after a read body, never an upgrade', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS']) assert.equal(retryAction(attempt({ method })), 'resend', method);
    assert.equal(retryAction(attempt({ resends: 1 })), 'answer');
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
      assert.equal(retryAction(attempt({ method })), 'answer', method);
    const read = { kind: 'reset' as const, bodyConsumed: true, error: new Error('x') };
    assert.equal(retryAction(attempt({ failure: read })), 'answer');
    assert.equal(retryAction(attempt({ isUpgrade: true })), 'answer');
  });

  test('timeouts and protocol errors are answered', () => {
    for (const kind of ['timeout', 'protocol'] as const) {
      assert.equal(retryAction(attempt({ failure: { kind, bodyConsumed: false, error: new Error(kind) } })), 'answer');
    }
  });
});
