import { Worker as Thread } from 'node:worker_threads';
import type { NatsConnection } from 'nats';
import { MessageSealer } from '../../control/message-auth.js';
import type { NatsAuth } from '../../control/nats-connect.js';
import type { Heartbeat } from '../../control/protocol.js';

/** The sequence space of a worker's heartbeats (apart from its main thread's messages, which it never waits on). */
export function heartbeatSender(workerId: string): string {
  return `worker:${workerId}/heartbeat`;
}

/** What a worker tells its heartbeat about itself. */
export interface HeartbeatState {
  incarnation: string | undefined;
  generation: number;
  step: number;
  /** Main-thread progress counter and phase (Heartbeat.progress). */
  progress?: number;
  phase?: string;
}

export interface HeartbeatSender {
  update(state: HeartbeatState): void;
  stop(): Promise<void>;
}

/** Heartbeats from the worker's own event loop: fine while steps are short (tests, tiny models). */
export function timerHeartbeat(
  nc: NatsConnection,
  subject: string,
  workerId: string,
  everyMs: number,
  key: Uint8Array,
): HeartbeatSender {
  const sealer = new MessageSealer(key, heartbeatSender(workerId));
  let state: HeartbeatState = { incarnation: undefined, generation: -1, step: 0 };
  const t = setInterval(() => {
    if (!state.incarnation || nc.isClosed()) return;
    const hb: Heartbeat = { type: 'heartbeat', workerId, ...state, incarnation: state.incarnation };
    nc.publish(subject, sealer.seal(subject, hb));
  }, everyMs);
  return {
    update: (s) => {
      state = s;
    },
    stop: async () => clearInterval(t),
  };
}

/**
 * Heartbeats from a separate thread with its own NATS connection. Why: a forward/backward pass or an evaluation
 * runs synchronously on the main thread for seconds (minutes for a large model on CPU), which would starve
 * timer-based heartbeats and get a healthy worker declared dead. A worker that is alive but stuck keeps beating
 * here, with a progress counter that no longer moves: the coordinator drops it after --progress-timeout.
 */
export function threadHeartbeat(
  auth: NatsAuth,
  subject: string,
  workerId: string,
  everyMs: number,
  key: Uint8Array,
): HeartbeatSender {
  const thread = new Thread(new URL('./heartbeat-thread.js', import.meta.url), {
    workerData: { auth, subject, workerId, everyMs, key },
  });
  thread.unref();
  thread.on('error', (err) =>
    process.stderr.write(`[${workerId}] heartbeat thread failed: ${err.message}\n`),
  );
  return {
    update: (s) => thread.postMessage(s),
    stop: async () => {
      thread.postMessage('stop');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          void thread.terminate();
          resolve();
        }, 2000);
        thread.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
