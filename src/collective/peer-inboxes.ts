/**
 * The receive side shared by both transports: one FIFO per peer, tag checks, and waits with timeouts.
 *
 * A peer's messages arrive in the order it sent them, and every rank issues the same sequence of ops, so the next
 * valid message from a peer is exactly the one awaited. Anything older (a leftover of an earlier step or a
 * previous generation) is refused and counted, never summed; anything newer than awaited means the ranks
 * disagree on the op sequence, which is a protocol error rather than something to wait out.
 */
import {
  CollectiveAbortedError,
  CollectiveClosedError,
  CollectiveProtocolError,
  CollectiveTimeoutError,
  PeerFailedError,
} from './errors.js';
import { type Frame, FrameKind } from './frame-codec.js';
import type { OpTag, TransportStats } from './transport.js';

interface Waiter {
  readonly tag: OpTag;
  readonly seq: number;
  readonly what: string;
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

class Inbox {
  queue: Frame[] = [];
  head = 0;
  waiter: Waiter | undefined;
  /** Set when the peer's stream ended or broke: recv fails once the queue is drained. */
  ended: Error | undefined;
}

export interface InboxIdentity {
  readonly jobId: string;
  readonly generation: number;
  readonly rank: number;
}

function compareKey(f: Frame, tag: OpTag, seq: number): number {
  if (f.step !== tag.step) return f.step < tag.step ? -1 : 1;
  if (f.op !== tag.op) return f.op < tag.op ? -1 : 1;
  if (f.seq !== seq) return f.seq < seq ? -1 : 1;
  return 0;
}

export class PeerInboxes {
  private readonly inboxes: Inbox[];
  /** Set by abort/close: every wait fails with it at once, queued frames or not. */
  private broken: Error | undefined;
  readonly counters: TransportStats = {
    staleRefused: 0,
    foreignRefused: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };

  constructor(
    private readonly self: InboxIdentity,
    worldSize: number,
    private readonly timeoutMs: number,
    private readonly describePeer: (rank: number) => string,
  ) {
    this.inboxes = Array.from({ length: worldSize }, () => new Inbox());
  }

  /** Routes one frame that arrived on the connection from `from`. */
  deliver(from: number, frame: Frame): void {
    if (frame.jobId !== this.self.jobId || frame.generation > this.self.generation || frame.from !== from) {
      this.counters.foreignRefused++;
      return;
    }
    if (frame.generation < this.self.generation) {
      this.counters.staleRefused++;
      return;
    }
    if (frame.kind === FrameKind.Abort) {
      this.failAll(
        new CollectiveAbortedError(
          `rank ${this.self.rank}: ${this.describePeer(from)} aborted step ${frame.step} (op ${frame.op}): ${frame.reason ?? 'no reason given'}`,
          from,
          frame.reason ?? '',
        ),
      );
      return;
    }
    if (frame.kind !== FrameKind.Data) {
      this.counters.foreignRefused++;
      return;
    }
    this.counters.framesReceived++;
    this.counters.bytesReceived += frame.payload.length;
    const inbox = this.inboxes[from]!;
    inbox.queue.push(frame);
    if (inbox.waiter) this.pump(from, inbox);
  }

  /** The peer's stream ended (cleanly or not): waits beyond what it already sent fail with `error`. */
  peerEnded(from: number, error: Error): void {
    const inbox = this.inboxes[from]!;
    if (inbox.ended) return;
    inbox.ended = error;
    if (inbox.waiter) this.pump(from, inbox);
  }

  /** Fails every current and future wait with `error` (the communicator is broken). */
  failAll(error: Error): void {
    if (!this.broken) this.broken = error;
    for (const inbox of this.inboxes) {
      const w = inbox.waiter;
      if (w) {
        inbox.waiter = undefined;
        clearTimeout(w.timer);
        w.reject(this.broken);
      }
    }
  }

  get failure(): Error | undefined {
    return this.broken;
  }

  recv(from: number, tag: OpTag, seq: number, what: string): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(this.broken);
    const inbox = this.inboxes[from]!;
    if (inbox.waiter) {
      return Promise.reject(
        new CollectiveClosedError(
          `rank ${this.self.rank}: two concurrent receives from ${this.describePeer(from)}`,
        ),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (inbox.waiter !== waiter) return;
        inbox.waiter = undefined;
        reject(
          new CollectiveTimeoutError(
            `rank ${this.self.rank} waited ${this.timeoutMs} ms for ${what} from ${this.describePeer(from)} at step ${tag.step} ` +
              `(op ${tag.op}, message ${seq}); that peer stalled, died or is unreachable. The communicator is broken: ` +
              'close it and re-form the group.',
            from,
            this.describePeer(from),
            tag.step,
          ),
        );
      }, this.timeoutMs);
      const waiter: Waiter = { tag, seq, what, resolve, reject, timer };
      inbox.waiter = waiter;
      this.pump(from, inbox);
    });
  }

  private pump(from: number, inbox: Inbox): void {
    const w = inbox.waiter!;
    while (inbox.head < inbox.queue.length) {
      const f = inbox.queue[inbox.head]!;
      inbox.queue[inbox.head] = undefined as unknown as Frame;
      inbox.head++;
      if (inbox.head > 1024 && inbox.head * 2 > inbox.queue.length) {
        inbox.queue = inbox.queue.slice(inbox.head);
        inbox.head = 0;
      }
      const c = compareKey(f, w.tag, w.seq);
      if (c < 0) {
        this.counters.staleRefused++;
        continue;
      }
      inbox.waiter = undefined;
      clearTimeout(w.timer);
      if (c > 0) {
        w.reject(
          new CollectiveProtocolError(
            `rank ${this.self.rank} expected message ${w.seq} of step ${w.tag.step} op ${w.tag.op} from ${this.describePeer(from)} ` +
              `but got message ${f.seq} of step ${f.step} op ${f.op}: the ranks disagree on the sequence of collectives ` +
              '(every rank must call the same collectives with the same steps in the same order)',
          ),
        );
        return;
      }
      if (f.wire !== w.tag.wire || f.totalElements !== w.tag.totalElements) {
        w.reject(
          new CollectiveProtocolError(
            `rank ${this.self.rank} reduces ${w.tag.totalElements} floats with wire code ${w.tag.wire} at step ${w.tag.step}, ` +
              `but ${this.describePeer(from)} sent ${f.totalElements} floats with wire code ${f.wire}: ` +
              'the workers used different step plans or options',
          ),
        );
        return;
      }
      w.resolve(f.payload);
      return;
    }
    if (inbox.ended) {
      inbox.waiter = undefined;
      clearTimeout(w.timer);
      const e = inbox.ended;
      w.reject(
        e instanceof PeerFailedError
          ? new PeerFailedError(
              `${e.message} (rank ${this.self.rank} was waiting for ${w.what} at step ${w.tag.step}, op ${w.tag.op})`,
              e.peerRank,
              e.peerAddress,
              w.tag.step,
              { cause: e.cause },
            )
          : e,
      );
    }
  }
}
