/** The heartbeat thread (see threadHeartbeat): publishes the latest state it was told, every `everyMs`. */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNats, type NatsAuth } from '../../control/nats-connect.js';
import { encodeMessage } from '../../control/protocol.js';
import type { HeartbeatState } from './heartbeat.js';

const { auth, subject, workerId, everyMs } = workerData as {
  auth: NatsAuth;
  subject: string;
  workerId: string;
  everyMs: number;
};
let state: HeartbeatState = { incarnation: undefined, generation: -1, step: 0 };
const nc = await connectNats(auth, `promptmesh-heartbeat-${workerId}`);
const timer = setInterval(() => {
  if (state.incarnation && !nc.isClosed()) {
    nc.publish(subject, encodeMessage({ type: 'heartbeat', workerId, ...state }));
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
