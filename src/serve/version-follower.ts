/**
 * Keeps the served version in step with a reference that can move (a tag, JOB@head): resolves it every `pollMs`
 * (a folder bank has no other signal) and at once when the bank announces a commit on NATS
 * (`promptmesh.*.bank.version`; a stage's final version is committed and tagged in one step). On a new id it opens
 * the new version, swaps it in between two forward passes and disposes the old one. A version that cannot be
 * opened (another method config, a damaged blob) is reported and the old one keeps serving.
 */
import type { NatsConnection, Subscription } from 'nats';
import type { PromptBank } from '../bank/index.js';
import type { ServedVersion } from '../infer/index.js';

export interface VersionFollowerOptions {
  /** How often to resolve the reference again; 0 = only on announcements. */
  pollMs: number;
  /** Announcements of commits arrive here (a JetStream bank's connection, or any connection to the job's NATS). */
  nc?: NatsConnection | null;
  log: (line: string) => void;
  onSwitch?: (from: ServedVersion | undefined, to: ServedVersion) => void;
}

export class VersionFollower {
  private served: ServedVersion | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;
  private checking: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failedId: string | undefined;

  constructor(
    private readonly bank: PromptBank,
    readonly ref: string,
    private readonly open: (id: string) => Promise<ServedVersion>,
    private readonly options: VersionFollowerOptions,
  ) {}

  get current(): ServedVersion | undefined {
    return this.served;
  }

  /** Opens the version the reference names now (errors propagate: nothing to serve), then follows it. */
  async start(): Promise<ServedVersion> {
    const m = await this.bank.get(this.ref);
    this.swap(await this.open(m.id));
    if (this.options.pollMs > 0) {
      this.timer = setInterval(() => void this.check(), this.options.pollMs);
      this.timer.unref();
    }
    if (this.options.nc) {
      this.sub = this.options.nc.subscribe('promptmesh.*.bank.version', {
        callback: (err) => {
          if (!err) void this.check();
        },
      });
    }
    return this.served!;
  }

  /** Resolves the reference and switches when it names another version; concurrent calls coalesce. */
  check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        await this.checkOnce();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    let id: string;
    try {
      id = (await this.bank.get(this.ref)).id;
    } catch (e) {
      this.options.log(
        `cannot resolve '${this.ref}': ${(e as Error).message}; still serving ${this.served?.manifest.id.slice(0, 12)}`,
      );
      return;
    }
    if (id === this.served?.manifest.id || id === this.failedId) return;
    let next: ServedVersion;
    try {
      next = await this.open(id);
    } catch (e) {
      this.failedId = id;
      this.options.log(
        `'${this.ref}' moved to ${id.slice(0, 12)}, which cannot be served (${(e as Error).message}); still serving ${this.served?.manifest.id.slice(0, 12)}`,
      );
      return;
    }
    if (this.stopped) {
      next.dispose();
      return;
    }
    this.swap(next);
  }

  private swap(next: ServedVersion): void {
    const prev = this.served;
    this.served = next;
    this.failedId = undefined;
    this.options.onSwitch?.(prev, next);
    // Passes run synchronously, so none is using the old method now.
    prev?.dispose();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.sub?.unsubscribe();
    await this.checking;
    this.served?.dispose();
    this.served = undefined;
  }
}
