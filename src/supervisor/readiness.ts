import http from 'node:http';
import net from 'node:net';

export interface ReadinessProbe {
  port: number;
  /** GET this path and expect 2xx once the port accepts connections; null: the port alone. */
  healthPath: string | null;
  timeoutMs: number;
  /** Aborted when the child exits, so a dead child fails at once instead of at the deadline. */
  signal: AbortSignal;
}

/** A start of an app's children that did not become ready. */
export class AppStartError extends Error {
  override readonly name = 'AppStartError';
  constructor(
    readonly app: string,
    message: string,
  ) {
    super(message);
  }
}

export class NotReadyError extends Error {
  override readonly name = 'NotReadyError';
}

const HOST = '127.0.0.1';

/**
 * Resolves once the child is ready (README, How apps are run: readiness): its port accepts a connection
 * and, with a health path, GET answers 2xx. Rejects with the last reason
 * when the deadline passes or the child exits.
 */
export async function waitUntilReady(probe: ReadinessProbe): Promise<void> {
  const deadline = Date.now() + probe.timeoutMs;
  let pause = 20;
  let lastReason = `port ${probe.port} never accepted a connection`;
  while (!probe.signal.aborted) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const attemptMs = Math.min(remaining, 2_000);
    const connected = await canConnect(probe.port, attemptMs, probe.signal);
    if (connected) {
      if (probe.healthPath === null) return;
      const status = await healthStatus(probe.port, probe.healthPath, attemptMs, probe.signal);
      if (status >= 200 && status < 300) return;
      lastReason =
        status === 0 ? `GET ${probe.healthPath} got no answer` : `GET ${probe.healthPath} answered ${status}`;
    }
    await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), probe.signal);
    pause = Math.min(pause * 2, 250);
  }
  if (probe.signal.aborted) throw new NotReadyError(String(probe.signal.reason ?? 'exited before it was ready'));
  throw new NotReadyError(`not ready within ${probe.timeoutMs} ms: ${lastReason}`);
}

function canConnect(port: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: HOST });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The health check's status code; 0 when there was no answer. */
function healthStatus(port: number, path: string, timeoutMs: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: HOST, port, path, method: 'GET', agent: false, signal, headers: { 'user-agent': 'nano-gateway-health' } },
      (res) => {
        res.resume();
        clearTimeout(timer);
        resolve(res.statusCode ?? 0);
      },
    );
    const timer = setTimeout(() => req.destroy(), timeoutMs);
    req.once('error', () => {
      clearTimeout(timer);
      resolve(0);
    });
    req.end();
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    }
    signal.addEventListener('abort', finish, { once: true });
  });
}
