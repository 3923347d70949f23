/**
 * Slow readers (README, Reliability): clients that take a large download
 * and read none of it pin a bounded amount of the gateway's memory each,
 * backpressure reaches the child (it cannot hand over the whole download),
 * and a normal client's requests meanwhile stay fast. Black-box: the real
 * CLI, real children, raw sockets on loopback, bounded load (50 sockets).
 * It moves about 400 MB into kernel buffers, so it runs alone, after
 * the main suite, like the benchmark smoke test.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fixtureApp, GatewayProcess, gatewaySection, request, waitFor } from '../helpers.js';

const SLOW_READERS = 50;
const DOWNLOAD_BYTES = 64 * 1024 * 1024;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Asks for the download, takes its first bytes, then reads nothing more: the kernel's buffers fill, the window closes. */
function slowReader(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET /flood?bytes=${DOWNLOAD_BYTES} HTTP/1.1\r\nHost: big.test\r\n\r\n`);
      socket.once('data', () => {
        socket.pause();
        resolve(socket);
      });
    });
    socket.on('error', reject);
  });
}

describe('slow readers', () => {
  let gw: GatewayProcess;
  let bigPort = 0;

  before(async () => {
    gw = await GatewayProcess.start({
      config:
        gatewaySection('access_log = false') + fixtureApp('big', ['big.test']) + fixtureApp('normal', ['normal.test']),
    });
    bigPort = Number(gw.readyLogs('big')[0]?.port);
  });

  after(async () => {
    await gw?.cleanup();
  });

  const written = async (): Promise<number> =>
    (JSON.parse((await request(bigPort, { path: '/flood-stats' })).body) as { written: number }).written;

  test(`${SLOW_READERS} clients not reading ${DOWNLOAD_BYTES / 2 ** 20} MiB downloads: bounded memory, backpressure to the child, a normal p99 under 200 ms`, async () => {
    // Warm the normal path, then take the gateway's memory before the slow readers come.
    for (let i = 0; i < 20; i++) assert.equal((await gw.request({ host: 'normal.test', path: '/' })).status, 200);
    const rssBefore = rssBytes(gw.pid);
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < SLOW_READERS; i += 10) {
        sockets.push(...(await Promise.all(Array.from({ length: 10 }, () => slowReader(gw.port)))));
      }
      // Backpressure settles: the child's downloads stop advancing once every buffer on the way is full.
      let last = -1;
      const stalled = await waitFor(
        async () => {
          const now = await written();
          const settled = now === last;
          last = now;
          return settled ? now : undefined;
        },
        'the downloads to stop advancing',
        30_000,
        500,
      );
      // On loopback the kernel's socket buffers on both hops take several MB per connection; the rest stays in the child.
      assert.ok(
        stalled < (SLOW_READERS * DOWNLOAD_BYTES) / 4,
        `the child could hand over ${(stalled / 2 ** 20).toFixed(0)} MB of ${(SLOW_READERS * DOWNLOAD_BYTES) / 2 ** 20} MB: backpressure reached it`,
      );
      // What the gateway holds per slow reader is bounded (stream high-water marks: README, Reliability),
      // not the download. Its resident size also keeps memory that passed through and was freed, so the
      // bound is loose; without backpressure it would take the downloads themselves (64 MiB each).
      const grown = rssBytes(gw.pid) - rssBefore;
      assert.ok(
        grown < SLOW_READERS * 2 * 2 ** 20,
        `the gateway grew by ${(grown / 2 ** 20).toFixed(1)} MB for ${SLOW_READERS} slow readers`,
      );

      // A normal client meanwhile: a few users at once, each request on a new connection.
      const latencies: number[] = [];
      const user = async (): Promise<void> => {
        while (latencies.length < 150) {
          const started = performance.now();
          const res = await gw.request({ host: 'normal.test', path: '/' });
          assert.equal(res.status, 200);
          latencies.push(performance.now() - started);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await Promise.all([user(), user(), user(), user()]);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? Infinity;
      assert.ok(p99 < 200, `normal p99 ${p99.toFixed(1)} ms (max ${latencies.at(-1)?.toFixed(1)} ms)`);
      assert.equal(sockets.filter((s) => s.destroyed).length, 0, 'no slow download was cut');
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
