/**
 * Binding the collective's port again after a generation: the port is the worker's address for every later
 * generation, so a bind that fails because the previous listener still holds it (EADDRINUSE while it closes, a
 * socket in the kernel's hands a moment longer) is retried with backoff instead of leaving the worker without a
 * listener for the next generation.
 */
export interface ListenRetry {
  /** Attempts after the first (default 6: 0.1 + 0.2 + ... + 3.2 s = 6.3 s of waiting, beyond the 2 s close grace). */
  retries?: number;
  /** The first wait; doubled after each failure (default 100 ms). */
  baseMs?: number;
  /** Stop retrying (the worker is stopping). */
  cancelled?: () => boolean;
  sleep?: (ms: number) => Promise<void>;
}

export async function listenWithRetry<T>(bind: () => Promise<T>, opts: ListenRetry = {}): Promise<T> {
  const retries = opts.retries ?? 6;
  const base = opts.baseMs ?? 100;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 0; ; attempt++) {
    try {
      return await bind();
    } catch (e) {
      if (attempt >= retries || opts.cancelled?.()) throw e;
      await sleep(base * 2 ** attempt);
    }
  }
}
