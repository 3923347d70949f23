/**
 * A proxy worker (README, Workers): the in-process data plane, fed over IPC
 * by the primary. It owns nothing: no config, no children, no admin API.
 * Everything it serves by comes in `init` before it listens, and every
 * change after that comes in order on the same channel.
 */
import type { AddressInfo } from 'node:net';
import { engineNamed, LocalDataPlane } from '../dataplane/local-data-plane.js';
import type { ProxyRequest } from '../dataplane/request.js';
import { createForwardingLogger, type GatewayLogger } from '../log.js';
import type { BoundAddress, PrimaryMessage, WorkerMessage } from './protocol.js';

let dataPlane: LocalDataPlane | null = null;
let log: GatewayLogger | null = null;
let statsTimer: NodeJS.Timeout | null = null;
let closing = false;
/** The held requests of the last `held` question, by the key the primary names them with. */
const heldByKey = new Map<number, ProxyRequest>();
let heldKey = 0;
/** How long one held request's answer may keep the next waiting (README, Workers: pause and resume). */
const HELD_ANSWER_WAIT_MS = 50;

function send(message: WorkerMessage, sent?: () => void): void {
  if (!process.connected) return;
  process.send?.(message, undefined, undefined, sent ? () => sent() : undefined);
}

function bound(address: AddressInfo): BoundAddress {
  return { address: address.address, port: address.port, family: address.family };
}

// The primary alone decides when a worker stops: a Ctrl-C reaches the whole process group, and a
// worker that went at once would drop its in-flight requests instead of draining them.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

process.on('uncaughtException', (err) => {
  log?.logger.fatal({ err }, 'uncaught exception in a proxy worker');
  log?.flush();
  process.exit(1);
});

// node:cluster ends a worker whose primary is gone (its IPC channel closed), so none is left orphaned.

process.on('message', (message: PrimaryMessage) => {
  void handle(message);
});
send({ t: 'hello' });

async function handle(message: PrimaryMessage): Promise<void> {
  if (message.t === 'init') return init(message);
  const plane = dataPlane;
  if (plane === null) {
    // Stopped before it was given anything to serve: nothing to finish.
    if (message.t === 'close') process.exit(0);
    return;
  }
  switch (message.t) {
    case 'held': {
      heldByKey.clear();
      const held = plane.held(new Set(message.apps)).map((request) => {
        const key = ++heldKey;
        heldByKey.set(key, request);
        return { key, at: request.heldAt ?? 0n };
      });
      return send({ t: 'held-list', id: message.id, held });
    }
    case 'send-held': {
      const until = Date.now() + message.budgetMs;
      for (const key of message.keys) {
        const request = heldByKey.get(key);
        heldByKey.delete(key);
        if (request) await sendHeldAndWait(plane, request, Math.min(HELD_ANSWER_WAIT_MS, until - Date.now()));
      }
      return send({ t: 'sent-held', id: message.id });
    }
    case 'table':
    case 'settings':
    case 'certificates':
    case 'challenges':
      // A new table ends the pause's hold: the keys of the last `held` answer name nothing any more.
      if (message.t === 'table') heldByKey.clear();
      apply(plane, message);
      return send({ t: 'ack', seq: message.seq });
    case 'listen-tls':
      try {
        const address = await plane.listenTls(message.address);
        return send({ t: 'listen-tls-done', id: message.id, bound: bound(address), message: null, code: null });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return send({ t: 'listen-tls-done', id: message.id, bound: null, message: e.message, code: e.code ?? null });
      }
    case 'drain':
      await plane.drain(message.upstreams, message.timeoutMs);
      return send({ t: 'drained', id: message.id });
    case 'forget':
      return plane.forget(message.upstreams);
    case 'close':
      return close(plane, message.timeoutMs);
  }
}

/**
 * Sends a held request on and resolves once the child has begun to answer
 * it, so that the next one (here or in another worker) reaches the app
 * after it: requests on different connections (a new one is accepted a
 * turn later) can otherwise overtake each other. A slow answer ends the
 * wait after `waitMs`.
 */
function sendHeldAndWait(plane: LocalDataPlane, request: ProxyRequest, waitMs: number): Promise<void> {
  if (waitMs <= 0) {
    plane.sendHeld(request);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(done, waitMs);
    function done(): void {
      clearTimeout(timer);
      request.onAnswer = null;
      resolve();
    }
    request.onAnswer = done;
    plane.sendHeld(request);
    if (request.closed || request.upstream === null) done();
  });
}

/** A change of what it serves by, applied at once (the ack follows it on the channel). */
function apply(plane: LocalDataPlane, message: Extract<PrimaryMessage, { seq: number }>): void {
  if (message.t === 'table') plane.publish(message.table);
  else if (message.t === 'settings') plane.configure(message.settings);
  else if (message.t === 'certificates') plane.publishCertificates(message.certificates);
  else if (message.t === 'challenges') plane.publishChallenges(message.challenges);
}

async function init(message: Extract<PrimaryMessage, { t: 'init' }>): Promise<void> {
  if (dataPlane !== null) return;
  log = createForwardingLogger({
    level: message.logLevel,
    base: { worker: message.worker },
    send: (text, sent) => send({ t: 'log', text }, sent),
  });
  const { state } = message;
  const plane = new LocalDataPlane({
    logger: log.logger,
    accessLogger: log.bulk.child({ kind: 'access' }),
    settings: state.settings,
    engine: engineNamed(process.env.NANO_GATEWAY_ENGINE),
    ...(message.keepAliveTimeoutMs !== null ? { keepAliveTimeoutMs: message.keepAliveTimeoutMs } : {}),
  });
  dataPlane = plane;
  // The whole state before the first connection: a worker never routes by an older table.
  plane.publish(state.table);
  plane.publishCertificates(state.certificates);
  plane.publishChallenges(state.challenges);
  plane.onWake((app) => send({ t: 'wake', app }));
  let http: AddressInfo;
  let https: AddressInfo | null = null;
  let which: 'http' | 'https' = 'http';
  try {
    http = await plane.listen(message.listen.http);
    if (message.listen.https) {
      which = 'https';
      https = await plane.listenTls(message.listen.https);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    send({ t: 'listen-failed', which, message: e.message, code: e.code ?? null }, () => process.exit(1));
    return;
  }
  statsTimer = setInterval(() => send({ t: 'stats', traffic: plane.stats() }), message.statsIntervalMs);
  statsTimer.unref();
  send({ t: 'ready', seq: message.seq, engine: plane.engineName, http: bound(http), https: https && bound(https) });
}

/** The primary's SIGTERM, passed on: finish in-flight requests (README, Workers: stopping), report, exit. */
async function close(plane: LocalDataPlane, timeoutMs: number): Promise<void> {
  if (closing) return;
  closing = true;
  if (statsTimer) clearInterval(statsTimer);
  await plane.close(timeoutMs);
  log?.flush();
  send({ t: 'closed', traffic: plane.stats() }, () => process.exit(0));
}
