import { ErrorCode, type NatsError } from 'nats';

/**
 * How a worker that nobody admits tells the operator. Workers legitimately start before their coordinator (a
 * Kubernetes StatefulSet, a script), so waiting is normal at first; after a while the likely causes are no
 * coordinator for this job id (a finished job's coordinator has exited) or one on another NATS server. The
 * reminder says so at a bounded rate, and --join-timeout turns the wait into an exit.
 */

/** The first reminder comes after this long, then one every JOIN_NOTICE_EVERY_MS. */
export const JOIN_NOTICE_FIRST_MS = 10_000;
export const JOIN_NOTICE_EVERY_MS = 30_000;

export interface JoinWait {
  job: string;
  /** The NATS subject the join requests go to. */
  subject: string;
  /** The NATS server the worker is connected to (host:port). */
  server: string;
  waitedMs: number;
  /** Why the last request got no admission, in words. */
  last: string;
  /** 0 = wait forever. */
  timeoutMs: number;
}

/** No coordinator admitted the worker within --join-timeout. */
export class JoinTimeoutError extends Error {
  override name = 'JoinTimeoutError';
  constructor(readonly wait: JoinWait) {
    super(
      `gave up joining job '${wait.job}' after ${seconds(wait.waitedMs)} (--join-timeout ` +
        `${wait.timeoutMs / 1000}): ${unanswered(wait)}. ${whatToCheck(wait.job)}`,
    );
  }
}

/** The periodic reminder while the worker keeps waiting. */
export function stillWaitingMessage(wait: JoinWait): string {
  const until =
    wait.timeoutMs > 0
      ? `giving up in ${seconds(Math.max(0, wait.timeoutMs - wait.waitedMs))} (--join-timeout)`
      : 'waiting on (--join-timeout SECONDS to give up instead)';
  return (
    `still waiting to join job '${wait.job}' after ${seconds(wait.waitedMs)}: ${unanswered(wait)}. ` +
    `${whatToCheck(wait.job)} ${until[0]!.toUpperCase()}${until.slice(1)}.`
  );
}

/** A failed join request in words: the NATS error codes mean different things to an operator. */
export function describeJoinFailure(err: unknown): string {
  const code = (err as Partial<NatsError>).code;
  if (code === ErrorCode.NoResponders) return 'no coordinator is subscribed';
  if (code === ErrorCode.Timeout) return 'a subscriber did not answer in time';
  return err instanceof Error ? err.message : String(err);
}

function unanswered(w: JoinWait): string {
  return `no coordinator answered on ${w.subject} (NATS ${w.server}; last attempt: ${w.last})`;
}

function whatToCheck(job: string): string {
  return (
    `Is a coordinator running for job '${job}' on this NATS server? A finished job's coordinator has exited: ` +
    'to train again, start a new job (coordinator and workers) with --job-id ID.'
  );
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}
