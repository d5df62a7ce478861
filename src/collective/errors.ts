/**
 * One error class per failure a caller handles differently. Every collective failure derives from
 * CollectiveError, and after any of them the communicator is broken: close it and create a new one (the
 * coordinator does that on a generation change). Retrying on the same communicator would mix messages of the
 * failed op with the retry's.
 */
export class CollectiveError extends Error {
  override readonly name: string = 'CollectiveError';
}

/** Options were invalid (unknown rank, duplicate address, bad sizes). Fix the call; nothing was sent. */
export class CollectiveConfigError extends CollectiveError {
  override readonly name = 'CollectiveConfigError';
}

/** A peer sent nothing (or did not read) for `timeoutMs`: it stalled or is unreachable. */
export class CollectiveTimeoutError extends CollectiveError {
  override readonly name = 'CollectiveTimeoutError';
  constructor(
    message: string,
    readonly peerRank: number,
    readonly peerAddress: string,
    readonly step: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The connection to a peer broke (the process died or closed its side). */
export class PeerFailedError extends CollectiveError {
  override readonly name = 'PeerFailedError';
  constructor(
    message: string,
    readonly peerRank: number,
    readonly peerAddress: string,
    readonly step: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Another rank's collective failed and it told us so; `reason` is its error message. */
export class CollectiveAbortedError extends CollectiveError {
  override readonly name = 'CollectiveAbortedError';
  constructor(
    message: string,
    readonly peerRank: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Ranks disagree about what they are reducing (different step, buffer length, wire format): a bug in the caller
 * or a step plan that differs between workers. Not retryable without fixing the plan.
 */
export class CollectiveProtocolError extends CollectiveError {
  override readonly name = 'CollectiveProtocolError';
}

/** A peer refused our subscription/handshake (foreign job, stale generation, wrong rank) or we could not connect. */
export class CollectiveConnectError extends CollectiveError {
  override readonly name = 'CollectiveConnectError';
}

/** The communicator was closed (locally) before or during the call. */
export class CollectiveClosedError extends CollectiveError {
  override readonly name = 'CollectiveClosedError';
}

/** fuse()/unfuse() were given tensors that do not match the plan or layout. */
export class FusionError extends Error {
  override readonly name = 'FusionError';
}
