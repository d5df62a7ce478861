/** The heartbeat thread (see threadHeartbeat): publishes the latest state it was told, every `everyMs`. */
import { parentPort, workerData } from 'node:worker_threads';
import { MessageSealer } from '../../control/message-auth.js';
import { connectNats, type NatsAuth } from '../../control/nats-connect.js';
import { type HeartbeatState, heartbeatSender } from './heartbeat.js';

const { auth, subject, workerId, everyMs, key } = workerData as {
  auth: NatsAuth;
  subject: string;
  workerId: string;
  everyMs: number;
  /** The job key (message-auth.ts); this thread seals in a sequence space of its own. */
  key: Uint8Array;
};
const sealer = new MessageSealer(key, heartbeatSender(workerId));
let state: HeartbeatState = { incarnation: undefined, generation: -1, step: 0 };
const nc = await connectNats(auth, `promptmesh-heartbeat-${workerId}`);
const timer = setInterval(() => {
  if (state.incarnation && !nc.isClosed()) {
    nc.publish(subject, sealer.seal(subject, { type: 'heartbeat', workerId, ...state }));
  }
}, everyMs);
parentPort!.on('message', (m: HeartbeatState | 'stop') => {
  if (m === 'stop') {
    clearInterval(timer);
    void nc.drain().finally(() => process.exit(0));
    return;
  }
  state = m;
});
