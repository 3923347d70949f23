import type { Duplex } from 'node:stream';

/**
 * How long an ended tunnel lets each socket flush what it still holds before
 * destroying it anyway. Enough for a last WebSocket close frame to reach a
 * peer that reads; bounded because a peer that stops reading (its window
 * full) would otherwise hold the socket open, and with it the request the
 * gateway counts in flight, which drains and idle timeouts wait on.
 */
export const TUNNEL_CLOSE_GRACE_MS = 2_000;

/**
 * Makes the sockets of an upgraded connection one tunnel that ends both
 * ways, as nginx's does: once either side ends (its FIN), errors or
 * closes, the other is ended so that what is buffered for it is flushed,
 * and each socket is destroyed once its writes are flushed, or after
 * TUNNEL_CLOSE_GRACE_MS at the latest.
 *
 * http-proxy-3 pipes the sockets but only half-closes: it ends the other
 * side and waits for that side's own FIN. Both the gateway's listener and
 * a child's server allow half-open connections, so a peer that never sends
 * its FIN would keep the tunnel, and its request, open for ever.
 *
 * Made once per upgrade, off the plain HTTP path, so closures are fine here.
 */
export function tieTunnel(client: Duplex, upstream: Duplex): void {
  let over = false;
  let open = (client.closed ? 0 : 1) + (upstream.closed ? 0 : 1);
  let grace: NodeJS.Timeout | null = null;
  const end = (): void => {
    if (over) return;
    over = true;
    // Nothing is relayed any more: what either peer still sends has nowhere to go.
    client.unpipe(upstream);
    upstream.unpipe(client);
    grace = setTimeout(destroyBoth, TUNNEL_CLOSE_GRACE_MS, client, upstream);
    grace.unref();
    closeWhenFlushed(client);
    closeWhenFlushed(upstream);
  };
  const closed = (): void => {
    end();
    if (--open <= 0 && grace) {
      clearTimeout(grace);
      grace = null;
    }
  };
  for (const socket of [client, upstream]) {
    socket.once('end', end);
    // `on`: a second error must not become an uncaught one.
    socket.on('error', end);
    socket.once('close', closed);
  }
  // A side that is gone already emits nothing more. Deferred so that
  // http-proxy-3, which listens for the upgrade after the engine, has set
  // up its pipes before they are taken down.
  if (client.destroyed || upstream.destroyed || client.readableEnded || upstream.readableEnded) process.nextTick(end);
}

function closeWhenFlushed(socket: Duplex): void {
  if (socket.destroyed) return;
  // Unread bytes make the kernel answer the close with a reset, which can
  // discard what is still queued for the peer: keep reading and drop them.
  socket.resume();
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end();
}

function destroyBoth(client: Duplex, upstream: Duplex): void {
  client.destroy();
  upstream.destroy();
}
