import * as grpc from '@grpc/grpc-js';

/**
 * Sends grpc-js's own diagnostics (written straight to stderr by default, e.g. "E No address added out of total 1
 * resolved" on a failed bind) to the process's logger at warn, so a process logging JSON lines writes nothing else.
 * The caller reports the failure itself; these lines only add detail.
 */
export function routeGrpcLogs(warn: (line: string) => void): void {
  const line = (...args: unknown[]) => warn(`grpc: ${args.map(String).join(' ')}`);
  grpc.setLogger({ error: line, warn: line, info: line, debug: line, log: line });
}
