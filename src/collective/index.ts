export {
  type AlgorithmChoice,
  type AlgorithmName,
  DEFAULT_CROSSOVER_BYTES,
  selectAlgorithm,
} from './algorithm-selection.js';
export {
  type AllReduceOptions,
  Collective,
  type CollectiveOptions,
  type CollectiveStats,
  createCollective,
  type ReduceOp,
} from './collective.js';
export {
  CollectiveAbortedError,
  CollectiveClosedError,
  CollectiveConfigError,
  CollectiveConnectError,
  CollectiveError,
  CollectiveProtocolError,
  CollectiveTimeoutError,
  FusionError,
  PeerFailedError,
} from './errors.js';
export {
  type FusedBuffer,
  type FusionLayout,
  fuse,
  type NamedLengths,
  type NamedTensors,
  planLayout,
  unfuse,
} from './fusion.js';
export { routeGrpcLogs } from './grpc-logs.js';
export { GrpcTransport } from './grpc-transport.js';
export {
  type ConnectOptions,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_HOST,
  DEFAULT_TIMEOUT_MS,
  type ListenOptions,
  type PeerInfo,
  type TlsFiles,
} from './options.js';
export { TcpTransport } from './tcp-transport.js';
export type { Transport, TransportStats } from './transport.js';
export type { WireFormat } from './wire-format.js';
