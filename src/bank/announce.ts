/** Tells the control plane a bank version was committed, so workers and dashboards can react without polling. */
import type { NatsConnection } from 'nats';
import { bankVersionSubject } from '../control/subjects.js';
import type { Manifest } from './manifest.js';

export interface VersionAnnouncement {
  id: string;
  job: string;
  step: number;
  parent: string | null;
  method: string;
  metrics: Record<string, number>;
}

/** Publishes on `promptmesh.<job>.bank.version` and flushes, so the announcement has left when this resolves. */
export async function announceVersion(nc: NatsConnection, manifest: Manifest): Promise<VersionAnnouncement> {
  const msg: VersionAnnouncement = {
    id: manifest.id,
    job: manifest.job,
    step: manifest.step,
    parent: manifest.parent,
    method: manifest.method,
    metrics: manifest.metrics,
  };
  nc.publish(bankVersionSubject(manifest.job), new TextEncoder().encode(JSON.stringify(msg)));
  await nc.flush();
  return msg;
}

export function parseVersionAnnouncement(data: Uint8Array): VersionAnnouncement {
  return JSON.parse(new TextDecoder().decode(data)) as VersionAnnouncement;
}
