/**
 * Preloaded into every child (`node --require`). The gateway holds the other
 * end of an IPC channel; when the gateway dies, even by SIGKILL, the channel
 * closes and the child terminates itself, so no orphan keeps a port.
 *
 * The child gets SIGTERM first so that an app's own shutdown handler runs;
 * if that handler never exits, a hard exit follows.
 */
const GRACE_MS = 5000;

if (process.channel) {
  // The channel must not keep an app alive that would otherwise exit.
  process.channel.unref();
  process.once('disconnect', () => {
    setTimeout(() => process.exit(1), GRACE_MS).unref();
    process.kill(process.pid, 'SIGTERM');
  });
}
