/**
 * Authentication of the control plane: every message between the coordinator and the workers is sealed with a MAC
 * keyed by a per-job secret that only holders of the join token can derive. The token itself never travels.
 *
 * 1. Key: jobKey = HKDF-SHA256(ikm = join token, salt = CONTROL_LABEL, info = "control\0" + job id). A key is bound
 *    to its job, so a message of job A can never be replayed into job B, even with the same token.
 * 2. Seal (sender): the wire bytes are a JSON envelope {a: AUTH_VERSION, s: sender, q: seq, t: timeMs, b: body,
 *    m: mac}, where `body` is the message's exact JSON text and
 *      mac = HMAC-SHA256(jobKey, "promptmesh-ctl-v1" \0 subject \0 sender \0 seq \0 timeMs \0 body).
 *    The subject is bound, so a report cannot be replayed as a control message or a heartbeat as a join.
 *    `sender` names one sequence space (the worker's main thread and its heartbeat thread have different ones) and
 *    ends with a random per-process suffix; `seq` increases by one per sealed message.
 * 3. Open (receiver): refuse the message unless the MAC matches (constant-time), |now - timeMs| <= maxSkewMs, and
 *    seq is greater than the last one accepted from that sender (replay protection; senders are remembered for
 *    as long as their timestamps are valid, so the memory stays bounded).
 * What it does not give: confidentiality (anyone on NATS still reads the bodies: use TLS to NATS for that), and
 * protection against a member that holds the token (all members share the key).
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_CONTROL_BYTES } from './protocol.js';

export const CONTROL_LABEL = 'promptmesh-ctl-v1';
export const AUTH_VERSION = 1;
/** Largest accepted clock difference between two hosts (and lifetime of a captured message). */
export const DEFAULT_MAX_SKEW_MS = 60_000;
/** Shortest join token accepted. */
export const MIN_TOKEN_LENGTH = 16;
/** Secrets shipped as placeholders in the manifests and the docs: a job must never run with one. */
export const PLACEHOLDER_TOKENS: readonly string[] = [
  'change-me-before-applying',
  'change-me',
  'changeme',
  'secret',
  'password',
  'token',
];

export class InsecureTokenError extends Error {
  override name = 'InsecureTokenError';
}

export class MessageAuthError extends Error {
  override name = 'MessageAuthError';
}

/**
 * Refuses a missing, short or placeholder token, naming what to do. `what` names where the token came from
 * (an option or an environment variable) for the message.
 */
export function checkToken(token: string | undefined, what = 'the join token'): string {
  const fix =
    'generate one with `openssl rand -hex 32` (or `node -e "console.log(crypto.randomBytes(32).toString(\'hex\'))"`) ' +
    'and give the same value to the coordinator and every worker';
  if (token === undefined || token.length === 0) throw new InsecureTokenError(`${what} is empty: ${fix}`);
  const lower = token.trim().toLowerCase();
  if (PLACEHOLDER_TOKENS.includes(lower) || lower.startsWith('change-me') || lower.startsWith('changeme')) {
    throw new InsecureTokenError(`${what} is the placeholder '${token}', not a secret: ${fix}`);
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new InsecureTokenError(
      `${what} has ${token.length} characters, fewer than the ${MIN_TOKEN_LENGTH} required: ${fix}`,
    );
  }
  return token;
}

/** The per-job control key (step 1). */
export function deriveJobKey(token: string, jobId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, CONTROL_LABEL, `control\0${jobId}`, 32));
}

/**
 * The key that admits a rank to one generation's collective: derived from the job key and bound to the
 * coordinator's incarnation and the generation, so a key of an earlier generation or incarnation opens nothing.
 */
export function deriveGenerationKey(
  jobKey: Uint8Array,
  jobId: string,
  incarnation: string,
  generation: number,
): Buffer {
  return Buffer.from(
    hkdfSync('sha256', jobKey, 'promptmesh-collective-v1', `${jobId}\0${incarnation}\0${generation}`, 32),
  );
}

function mac(
  key: Uint8Array,
  subject: string,
  sender: string,
  seq: number,
  time: number,
  body: string,
): Buffer {
  return createHmac('sha256', key)
    .update(`${CONTROL_LABEL}\0${subject}\0${sender}\0${seq}\0${time}\0`)
    .update(body)
    .digest();
}

interface Envelope {
  a: number;
  s: string;
  q: number;
  t: number;
  b: string;
  m: string;
}

/** Seals messages of one sender (one sequence space). */
export class MessageSealer {
  private seq = 0;
  readonly sender: string;

  constructor(
    private readonly key: Uint8Array,
    sender: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.sender = `${sender}#${randomBytes(6).toString('hex')}`;
  }

  /** The sequence number of the last message sealed (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  seal(subject: string, msg: object): Uint8Array {
    return this.sealBody(subject, JSON.stringify(msg));
  }

  /** Seals a body as it is (the message's JSON text). */
  sealBody(subject: string, body: string): Uint8Array {
    const q = ++this.seq;
    const t = this.clock();
    const m = mac(this.key, subject, this.sender, q, t, body).toString('base64');
    const env: Envelope = { a: AUTH_VERSION, s: this.sender, q, t, b: body, m };
    return new TextEncoder().encode(JSON.stringify(env));
  }
}

/** Opens sealed messages: checks the MAC, the time window and the sender's sequence (step 3). */
export class MessageOpener {
  private readonly last = new Map<string, { seq: number; time: number }>();
  private lastSweep = 0;

  constructor(
    private readonly key: Uint8Array,
    private readonly maxSkewMs = DEFAULT_MAX_SKEW_MS,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Returns the body's bytes (for decodeMessage) and the sender; throws MessageAuthError on any failure. */
  open(subject: string, data: Uint8Array): { body: Uint8Array; sender: string; seq: number } {
    // A body within MAX_CONTROL_BYTES takes at most twice that once escaped in the envelope.
    if (data.byteLength > 2 * MAX_CONTROL_BYTES + 1024) {
      throw new MessageAuthError(`message of ${data.byteLength} bytes is too large`);
    }
    let env: Partial<Envelope>;
    try {
      env = JSON.parse(new TextDecoder().decode(data)) as Partial<Envelope>;
    } catch {
      throw new MessageAuthError('not a sealed message');
    }
    if (
      typeof env !== 'object' ||
      env === null ||
      env.a !== AUTH_VERSION ||
      typeof env.s !== 'string' ||
      env.s.length > 256 ||
      !Number.isSafeInteger(env.q) ||
      !Number.isSafeInteger(env.t) ||
      typeof env.b !== 'string' ||
      typeof env.m !== 'string'
    ) {
      throw new MessageAuthError('not a sealed message (no MAC: a sender without the job key)');
    }
    const expected = mac(this.key, subject, env.s, env.q!, env.t!, env.b);
    const got = Buffer.from(env.m, 'base64');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new MessageAuthError('bad MAC (a sender without the job key, or a tampered message)');
    }
    const now = this.clock();
    if (Math.abs(now - env.t!) > this.maxSkewMs) {
      throw new MessageAuthError(
        `timestamp ${Math.round((env.t! - now) / 1000)} s away from this host's clock (a replay, or unsynchronised clocks)`,
      );
    }
    const prev = this.last.get(env.s);
    if (prev && env.q! <= prev.seq) throw new MessageAuthError('replayed message (sequence not increasing)');
    this.last.set(env.s, { seq: env.q!, time: now });
    this.sweep(now);
    return { body: new TextEncoder().encode(env.b), sender: env.s, seq: env.q! };
  }

  /** Forgets senders silent for longer than the window: their old messages are refused by timestamp anyway. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.maxSkewMs) return;
    this.lastSweep = now;
    for (const [s, v] of this.last) if (now - v.time > 2 * this.maxSkewMs) this.last.delete(s);
  }
}

/**
 * A log of refusals at a bounded rate: the first few are logged, then one summary per interval with the count,
 * so a flood of forged messages cannot fill the disk.
 */
export class RefusalLog {
  private count = 0;
  private logged = 0;
  private suppressed = 0;
  private windowStart = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly log: (line: string) => void,
    private readonly perWindow = 5,
    private readonly windowMs = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Total refusals so far. */
  get total(): number {
    return this.count;
  }

  refused(what: string, reason: string): void {
    this.count++;
    const now = this.clock();
    if (now - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) {
        this.log(`refused ${this.suppressed} more unauthenticated message(s) (${this.count - 1} in all)`);
      }
      this.windowStart = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.perWindow) {
      this.logged++;
      this.log(`refused ${what}: ${reason}`);
    } else {
      this.suppressed++;
    }
  }
}
