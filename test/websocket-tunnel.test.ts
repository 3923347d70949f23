/**
 * A WebSocket tunnel closes both ways when either side ends, like nginx's:
 * a peer that never sends its own FIN does not keep the tunnel, nor the
 * request counted in flight, open. Black-box, through a real gateway and
 * real children.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { adminCall, adminGatewaySection, fixtureApp, GatewayProcess, waitFor } from './helpers.js';

/**
 * A child that speaks just enough of an upgrade by hand (it runs from a
 * temporary directory, where `ws` cannot be imported). The path picks what
 * its side of the tunnel does:
 * - /end:  sends "hello", then ends its side, and goes on reading;
 * - /push: sends a tick every 50 ms and never ends its side;
 * - /echo: sends "hello", echoes what comes, ends its side after "bye"
 *   or once the other side has ended (a well-behaved peer).
 * GET /ws-state?id= tells what the tunnel `id` saw on the child's side.
 */
const TUNNEL_APP = `
import http from 'node:http';

const tunnels = new Map();
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/ws-state') {
    const state = tunnels.get(url.searchParams.get('id'));
    res.writeHead(state ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(state ?? null));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
});
server.on('upgrade', (req, socket) => {
  const url = new URL(req.url, 'http://x');
  const mode = url.pathname.slice(1);
  const state = { pid: process.pid, ended: false, closed: false, received: '' };
  tunnels.set(url.searchParams.get('id') ?? '', state);
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n\\r\\n');
  let ticks = null;
  socket.on('data', (chunk) => {
    const data = chunk.toString('utf8');
    state.received += data;
    if (mode !== 'echo') return;
    socket.write('echo:' + data);
    if (data.includes('bye')) socket.end();
  });
  socket.on('end', () => {
    state.ended = true;
    if (mode === 'echo') socket.end();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    state.closed = true;
    clearInterval(ticks);
  });
  if (mode === 'end') socket.end('hello\\n');
  else if (mode === 'echo') socket.write('hello\\n');
  else ticks = setInterval(() => socket.write('tick\\n'), 50);
});
server.listen(Number(process.env.PORT), process.env.HOST);
`;

interface ChildSide {
  pid: number;
  ended: boolean;
  closed: boolean;
  received: string;
}

/** The client's side of a tunnel: a raw socket that allows half-open, so it ends only when told to. */
interface ClientSide {
  socket: net.Socket;
  data: string;
  ended: boolean;
  closed: boolean;
}

function openTunnel(port: number, path: string): Promise<ClientSide> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const side: ClientSide = { socket, data: '', ended: false, closed: false };
    socket.setEncoding('utf8');
    socket.on('connect', () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: tun.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      ),
    );
    socket.on('data', (chunk: string) => {
      side.data += chunk;
      const headEnd = side.data.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      if (!side.data.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade answered: ${side.data}`));
      resolve(side);
    });
    socket.on('end', () => (side.ended = true));
    // A write to a connection the gateway has closed fails (EPIPE, ECONNRESET): that is the close.
    socket.on('error', () => {});
    socket.on('close', () => {
      side.closed = true;
      reject(new Error(`closed before the upgrade: ${side.data}`));
    });
  });
}

/** What comes through the tunnel after the 101 answer's head. */
function payload(side: ClientSide): string {
  return side.data.slice(side.data.indexOf('\r\n\r\n') + 4);
}

describe('WebSocket tunnels close both ways', () => {
  let gw: GatewayProcess;
  let admin: number;

  before(async () => {
    gw = await GatewayProcess.start({
      // A drain waits up to 60 s for what is in flight: one that ends in seconds had nothing left open.
      config:
        adminGatewaySection('drain_timeout_ms = 60000') +
        `[apps.tun]\nhosts = ["tun.test"]\nentry = "tunnel-app.mjs"\nready_timeout_ms = 8000\n\n` +
        fixtureApp('web', ['web.test']),
      files: { 'tunnel-app.mjs': TUNNEL_APP },
    });
    admin = await gw.adminPort();
  });

  after(async () => {
    await gw?.cleanup();
  });

  async function childSide(id: string): Promise<ChildSide> {
    const res = await gw.request({ host: 'tun.test', path: `/ws-state?id=${id}` });
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as ChildSide;
  }

  /** Restarts the app and waits for its old child to be stopped, which happens once its drain is over. */
  async function restartDrains(app: string, oldPid: number): Promise<void> {
    const from = gw.logs.length;
    const res = await adminCall(admin, 'POST', `/admin/apps/${app}/restart`);
    assert.equal(res.status, 200, res.body);
    await gw.waitForLog((l) => l.msg === 'old instance stopped' && l.app === app && l.pid === oldPid, 10_000, from);
  }

  async function accessStatus(path: string): Promise<unknown> {
    const line = await gw.waitForLog((l) => l.kind === 'access' && l.path === path);
    return line.status;
  }

  test('the child ends its side, the client never does: the gateway closes the client connection and the drain ends', async () => {
    const client = await openTunnel(gw.port, '/end?id=child-ends');
    await waitFor(() => client.ended || undefined, "the child's end to reach the client");
    assert.equal(payload(client), 'hello\n', 'what the child sent before its end is delivered first');
    // A half-open peer learns that the other end has gone only when it sends: the client goes on
    // talking, as a live page would, until its connection is closed.
    const talk = setInterval(() => client.socket.write('still here\n'), 50);
    try {
      await waitFor(() => client.closed || undefined, 'the gateway to close the client connection');
    } finally {
      clearInterval(talk);
    }
    const child = await childSide('child-ends');
    assert.equal(child.closed, true, "the child's socket is closed too");
    assert.equal(await accessStatus('/end?id=child-ends'), 101);
    await restartDrains('tun', child.pid);
  });

  test("the client ends its side, the child never does: the gateway closes the child's socket and the drain ends", async () => {
    const client = await openTunnel(gw.port, '/push?id=client-ends');
    await waitFor(() => payload(client).includes('tick') || undefined, 'the first tick');
    client.socket.end();
    // The child keeps pushing ticks; its socket closes only if the gateway's side is gone.
    const child = await waitFor(async () => {
      const side = await childSide('client-ends');
      return side.closed ? side : undefined;
    }, "the gateway to close the child's socket");
    assert.equal(child.ended, true, "the client's end reached the child first");
    await waitFor(() => client.closed || undefined, 'the client connection to close');
    assert.equal(client.ended, true, 'the gateway ended its side of the client connection');
    assert.equal(await accessStatus('/push?id=client-ends'), 101);
    await restartDrains('tun', child.pid);
  });

  test('echo traffic goes both ways, and a clean close from either side closes both', async () => {
    // The client closes.
    const first = await openTunnel(gw.port, '/echo?id=client-closes');
    first.socket.write('ping\n');
    await waitFor(() => payload(first).includes('echo:ping\n') || undefined, 'the echo');
    assert.equal(payload(first), 'hello\necho:ping\n');
    first.socket.end();
    await waitFor(() => first.closed || undefined, 'the client connection to close');
    const firstChild = await childSide('client-closes');
    assert.equal(firstChild.received, 'ping\n');
    await waitFor(async () => (await childSide('client-closes')).closed || undefined, "the child's socket to close");

    // The child closes; the client answers its end with its own, as a well-behaved peer does.
    const second = await openTunnel(gw.port, '/echo?id=child-closes');
    second.socket.once('end', () => second.socket.end());
    second.socket.write('bye\n');
    await waitFor(() => second.closed || undefined, 'the client connection to close');
    assert.equal(payload(second), 'hello\necho:bye\n', 'the last echo arrives before the close');
    await waitFor(async () => (await childSide('child-closes')).closed || undefined, "the child's socket to close");
    await restartDrains('tun', firstChild.pid);

    // Real WebSocket framing and close handshake, with the ws library on both ends.
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`, { headers: { host: 'web.test' } });
    const messages: string[] = [];
    ws.on('message', (data: WebSocket.RawData) => messages.push(data.toString()));
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      await waitFor(() => messages.length >= 1 || undefined, 'the greeting');
      const { pid } = JSON.parse(messages[0] as string) as { pid: number };
      ws.send('through the tunnel');
      await waitFor(() => messages.length >= 2 || undefined, 'the echo');
      assert.equal(messages[1], 'echo:through the tunnel');
      ws.close(1000);
      assert.equal(await closed, 1000);
      await restartDrains('web', pid);
    } finally {
      ws.terminate();
    }
  });
});
