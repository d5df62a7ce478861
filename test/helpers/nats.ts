/**
 * Test access to a real nats-server. Suites that need one call `natsSkipReason()` and pass it to
 * `describe(..., { skip })` so a machine without nats-server reports why instead of failing.
 */
import { findNatsServer, NATS_SERVER_INSTALL_HINT } from '../../src/control/nats-server.js';

export {
  findNatsServer,
  NATS_SERVER_INSTALL_HINT,
  type NatsServerHandle,
  NatsServerNotFoundError,
  NatsServerStartError,
  type StartNatsServerOptions,
  startNatsServer,
} from '../../src/control/nats-server.js';

/** False when nats-server is on PATH; otherwise the skip message. */
export function natsSkipReason(): string | false {
  return findNatsServer() ? false : `skipped: ${NATS_SERVER_INSTALL_HINT}`;
}
