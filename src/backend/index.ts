export {
  BACKEND_ENV,
  BACKEND_NAMES,
  type BackendChoice,
  type BackendName,
  type BackendRequest,
  BackendUnavailableError,
  currentBackend,
  describeBackend,
  nativeRuntimeEnv,
  parseBackendRequest,
  selectBackend,
} from './backend.js';
export { installLeanBackprop } from './lean-backprop.js';
