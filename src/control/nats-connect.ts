import * as fs from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from 'nats';

/** How to reach NATS: URL plus one of user/password, token or a creds file (NGS / decentralised auth). */
export interface NatsAuth {
  url: string;
  user?: string;
  password?: string;
  token?: string;
  credsFile?: string;
}

/** Environment variables read for NATS (flags win). Listed in docs/configuration.md. */
export const NATS_ENV = {
  url: 'NATS_URL',
  user: 'NATS_USER',
  password: 'NATS_PASSWORD',
  token: 'NATS_TOKEN',
  credsFile: 'NATS_CREDS',
} as const;

export function natsAuthFromEnv(env: NodeJS.ProcessEnv, flags: Partial<NatsAuth> = {}): NatsAuth | undefined {
  const url = flags.url ?? env[NATS_ENV.url];
  if (!url) return undefined;
  const pick = (k: keyof typeof NATS_ENV) => flags[k] ?? env[NATS_ENV[k]];
  const auth: NatsAuth = { url };
  for (const k of ['user', 'password', 'token', 'credsFile'] as const) {
    const v = pick(k);
    if (v) auth[k] = v;
  }
  return auth;
}

/**
 * Connects with unlimited reconnects: a restarted nats-server must not end the job. Control messages lost while
 * disconnected are re-sent by the protocol (the coordinator re-publishes plans, workers re-send results).
 */
export async function connectNats(auth: NatsAuth, name: string): Promise<NatsConnection> {
  const opts: Parameters<typeof connect>[0] = {
    servers: auth.url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5000,
  };
  if (auth.user) Object.assign(opts, { user: auth.user, pass: auth.password ?? '' });
  if (auth.token) Object.assign(opts, { token: auth.token });
  if (auth.credsFile) {
    let creds: Uint8Array;
    try {
      creds = fs.readFileSync(auth.credsFile);
    } catch (err) {
      throw new Error(`cannot read the NATS creds file ${auth.credsFile}: ${(err as Error).message}`);
    }
    Object.assign(opts, { authenticator: credsAuthenticator(creds) });
  }
  try {
    return await connect(opts);
  } catch (err) {
    throw new Error(
      `cannot connect to NATS at ${auth.url}: ${(err as Error).message}. Is nats-server running (apt-get install nats-server; nats-server -js)? Set NATS_URL or --nats.`,
      { cause: err },
    );
  }
}
