/**
 * Runs the operations that change what the gateway serves (reloads, admin
 * adds, removes and restarts) one at a time, in the order they were asked
 * for. An operation starts after the previous one settled, whatever its
 * outcome, so none is lost and none sees another half done.
 */
export class OperationQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.tail.then(operation, operation);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
