/**
 * Every metric the product emits, by name: the one list the code that emits them, the
 * template's alarms and dashboard, and `npm run stats` all read. Namespace
 * `Transcribo/Storage`; every metric carries the dimension `service` (Powertools' default).
 *
 * An operation has one name everywhere (its function file, serverless.yml, logs, metrics):
 * the `operation` dimension is that name, e.g. `getFileInfo`, `processUpload`, `storeFile`.
 */
export const NAMESPACE = 'Transcribo/Storage';

export const METRIC = {
  /** Every call of an operation. Dimensions: [service, operation], and [service] alone for the error-rate alarm. */
  requests: 'Requests',
  /** Milliseconds an operation took. Dimensions: [service, operation]. */
  latency: 'Latency',
  /** Calls that ended in an error. Dimensions: [service, operation], and [service] alone. */
  errors: 'Errors',
  /** The same errors by catalogue type. Dimensions: [service, operation, errorType]. */
  errorsByType: 'ErrorsByType',
  /** Milliseconds waiting on S3/MinIO per command (GetObject, UploadPart, ...). Dimensions: [service, command]. */
  storageLatency: 'StorageLatency',
  /** S3/MinIO calls that failed, per command. Dimensions: [service, command]. */
  storageErrors: 'StorageErrors',
  /** Plaintext bytes of each recording stored (ready). Dimensions: [service], and [service, operation] (processUpload, storeFile). */
  bytesStored: 'BytesStored',
  /** Plaintext bytes served to callers. Dimensions: [service], and [service, operation] (getFile). */
  bytesRead: 'BytesRead',
  /** Size of each recording stored, one value per file: its statistics are the size distribution. Dimensions: [service]. */
  fileSize: 'FileSize',
  /** Milliseconds spent encrypting a recording, and the bytes encryption added to it. Dimensions: [service]. */
  encryptionTime: 'EncryptionTime',
  encryptionOverhead: 'EncryptionOverheadBytes',
  /** Processing outcomes. Dimensions: [service]; rejected also [service, reason]. */
  uploadsReady: 'UploadsReady',
  uploadsRejected: 'UploadsRejected',
  uploadsFailed: 'UploadsFailed',
  uploadsExpired: 'UploadsExpired',
  sweptUploads: 'SweptUploads',
  sweepErrors: 'SweepErrors',
  deadLetters: 'DeadLetters',
  deadLettersRedriven: 'DeadLettersRedriven',
  /** Gauges the sweep emits each run: total plaintext bytes stored, files stored, and the age in seconds of the oldest upload still waiting to be processed. */
  storageUsed: 'StorageUsedBytes',
  storedFiles: 'StoredFiles',
  oldestWaitingUpload: 'OldestWaitingUploadSeconds',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];
