import net from 'node:net';

/**
 * Hands out free loopback ports for children. A port stays reserved while
 * its child lives, so two children started at once never get the same one
 * even though the OS could offer it twice between probe and bind.
 */
export class PortAllocator {
  private readonly reserved = new Set<number>();

  async allocate(): Promise<number> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await probeFreePort();
      if (!this.reserved.has(port)) {
        this.reserved.add(port);
        return port;
      }
    }
    throw new Error('could not find a free loopback port');
  }

  release(port: number): void {
    this.reserved.delete(port);
  }
}

function probeFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
