/**
 * Dynamic batching: rows of concurrent requests are queued and run together in one forward pass. A pass starts
 * when `maxBatch` rows wait, or `maxWaitMs` after the oldest waiting request arrived, whichever comes first (a
 * request left over from a full pass keeps its arrival time, so it never waits longer than maxWaitMs); a request's rows
 * are never split across passes unless the request alone holds more than `maxBatch`. The pass itself is
 * synchronous (TensorFlow.js runs on this thread), so requests arriving during a pass wait in the queue for the
 * next one.
 */
export interface DynamicBatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
}

export const DEFAULT_BATCHER_OPTIONS: DynamicBatcherOptions = Object.freeze({ maxBatch: 32, maxWaitMs: 5 });

interface Pending<I, O> {
  items: readonly I[];
  /** When it was queued (performance.now()): the oldest waiting request's time sets the deadline. */
  at: number;
  resolve: (out: O[]) => void;
  reject: (err: unknown) => void;
}

export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    /** Runs one pass over the rows (any mix of requests); returns one output per row, in order. */
    private readonly run: (items: readonly I[]) => O[],
    readonly options: DynamicBatcherOptions = DEFAULT_BATCHER_OPTIONS,
    /** Called after each pass with its row count. */
    private readonly onBatch: (rows: number, ms: number) => void = () => {},
  ) {
    if (!(options.maxBatch >= 1)) throw new RangeError(`maxBatch must be >= 1, got ${options.maxBatch}`);
    if (!(options.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be >= 0, got ${options.maxWaitMs}`);
  }

  /** Rows waiting for a pass. */
  get waiting(): number {
    return this.queued;
  }

  submit(items: readonly I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<O[]>((resolve, reject) => {
      this.queue.push({ items, at: performance.now(), resolve, reject });
      this.queued += items.length;
      if (this.queued >= this.options.maxBatch) this.schedule(0);
      else if (!this.timer) this.scheduleDeadline();
    });
  }

  /** A pass at the oldest waiting request's deadline (its arrival + maxWaitMs). */
  private scheduleDeadline(): void {
    const oldest = this.queue[0];
    if (!oldest) return;
    const ms = Math.max(0, oldest.at + this.options.maxWaitMs - performance.now());
    this.schedule(ms);
  }

  private schedule(ms: number): void {
    if (ms === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, ms);
  }

  /** Runs passes until fewer than maxBatch rows wait, then waits (at most maxWaitMs) for the rest to fill up. */
  private flush(): void {
    while (this.queue.length > 0) {
      const take: Pending<I, O>[] = [];
      let rows = 0;
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        if (take.length > 0 && rows + next.items.length > this.options.maxBatch) break;
        take.push(this.queue.shift()!);
        rows += next.items.length;
      }
      this.queued -= rows;
      const items = take.flatMap((p) => p.items);
      const t0 = performance.now();
      let out: O[];
      try {
        out = this.run(items);
      } catch (err) {
        for (const p of take) p.reject(err);
        continue;
      }
      this.onBatch(items.length, performance.now() - t0);
      let off = 0;
      for (const p of take) {
        p.resolve(out.slice(off, off + p.items.length));
        off += p.items.length;
      }
      // Fewer than maxBatch left: they run at their deadline, unless requests that arrived during the pass (queued
      // once this returns to the event loop) fill a batch first.
      if (this.queued > 0 && this.queued < this.options.maxBatch) {
        if (!this.timer) this.scheduleDeadline();
        return;
      }
    }
  }
}
