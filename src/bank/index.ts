export { announceVersion, parseVersionAnnouncement, type VersionAnnouncement } from './announce.js';
export {
  type CommitInput,
  type ComposeOptions,
  type ComposeTake,
  EXPORT_MANIFEST_FILE,
  EXPORT_TENSORS_FILE,
  type ExpectShapes,
  type GcOptions,
  type GcResult,
  type ImportOptions,
  PromptBank,
  type PromptBankOptions,
  type TensorDiff,
  type TensorInput,
  type UnreadableManifest,
  type VersionDiff,
  type VersionSummary,
} from './bank.js';
export { DIRECTORY_LAYOUT, DirectoryStore, type DirectoryStoreOptions } from './directory-store.js';
export {
  AmbiguousVersionError,
  BankConflictError,
  BankError,
  BankInputError,
  BankLockTimeoutError,
  BankStoreError,
  CorruptBlobError,
  GcRefusedError,
  InvalidManifestError,
  MissingBlobError,
  MissingManifestError,
  ShapeMismatchError,
  TagExistsError,
  UnknownVersionError,
} from './errors.js';
export {
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_STALE_LOCK_MS,
  type FileLockOptions,
  withFileLock,
} from './file-lock.js';
export { formatMetrics, formatMetricValue } from './format-metrics.js';
export { JetStreamStore, type JetStreamStoreOptions } from './jetstream-store.js';
export {
  canonicalJson,
  checkJobName,
  checkTagName,
  configHash,
  isVersionId,
  MANIFEST_FORMAT,
  type Manifest,
  manifestId,
  parseManifest,
  serializeManifest,
  type TensorEntry,
} from './manifest.js';
export { type OpenBankStoreOptions, openBankStore } from './open-store.js';
export {
  isPeftFolder,
  PEFT_CONFIG_FILE,
  PEFT_TENSOR,
  PEFT_WEIGHTS_FILE,
  type PeftBackbone,
  type PeftPromptTuning,
  readPeftPromptTuning,
  writePeftPromptTuning,
} from './peft-adapter.js';
export { type BankStore, type BlobInfo, type HeadCasResult, StoredBlobUnreadableError } from './store.js';
export { type BankTensor, blobDigest, bytesToFloat32, tensorBytes } from './tensor-bytes.js';
