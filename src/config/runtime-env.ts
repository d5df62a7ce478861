/**
 * Environment variables of the coordinator and worker processes (flags win over them). One list, documented in
 * docs/configuration.md, and used by the Kubernetes manifests.
 */
export const RUNTIME_ENV = {
  config: 'PROMPTMESH_CONFIG',
  bank: 'PROMPTMESH_BANK',
  bankNats: 'PROMPTMESH_BANK_NATS',
  token: 'PROMPTMESH_JOIN_TOKEN',
  workerId: 'PROMPTMESH_WORKER_ID',
  listen: 'PROMPTMESH_LISTEN',
  advertise: 'PROMPTMESH_ADVERTISE',
  joinTimeout: 'PROMPTMESH_JOIN_TIMEOUT',
  minWorkers: 'PROMPTMESH_MIN_WORKERS',
  maxWorkers: 'PROMPTMESH_MAX_WORKERS',
  metricsPort: 'PROMPTMESH_METRICS_PORT',
  metricsHost: 'PROMPTMESH_METRICS_HOST',
  tlsCert: 'PROMPTMESH_TLS_CERT',
  tlsKey: 'PROMPTMESH_TLS_KEY',
  tlsCa: 'PROMPTMESH_TLS_CA',
} as const;
