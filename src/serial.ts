/**
 * Runs a task one at a time. A request that arrives while the task runs is
 * not interleaved: it waits, and every request made during one run is served
 * by a single next run (which reads the newest state when it starts). Each
 * caller gets the result of the run that started after its request.
 */
export class SerialRunner<T> {
  private running: Promise<T> | null = null;
  private next: Promise<T> | null = null;

  constructor(private readonly task: () => Promise<T>) {}

  run(): Promise<T> {
    if (!this.running) return this.start();
    this.next ??= this.running.then(
      () => this.promoteNext(),
      () => this.promoteNext(),
    );
    return this.next;
  }

  get busy(): boolean {
    return this.running !== null;
  }

  private promoteNext(): Promise<T> {
    this.next = null;
    this.running = null;
    return this.start();
  }

  private start(): Promise<T> {
    const run = this.task().finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}
