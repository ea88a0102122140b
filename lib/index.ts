/**
 * The package's public entry point: what a backend imports as `transcribo-storage`.
 *
 * Only the storage service (the library API of the README), its types and the error
 * catalogue are exported; everything else in `lib/` is the functions' plumbing and may change
 * without notice. The service reads its configuration from the STORAGE_* variables on first
 * use (lib/config.ts); a bad or missing value throws `ConfigError` naming the variable.
 *
 * Re-exported, not restated, so a change of a signature in lib/service/storage-service.ts is
 * the package's change too.
 */
export {
  storageService,
  StorageService,
  type AudioInfo,
  type CreatedUpload,
  type DeletedFileInfo,
  type FileContent,
  type FileInfo,
  type GetFileOptions,
  type PlaybackLink,
  type SealedFileContent,
  type StoreFileInput,
} from './service/storage-service.ts';
// Exports of getFile(…, { decrypt: false }), opened later with the keys (also storageService().openSealedExport).
export { openSealedExport, type EncryptedExport, type KeyUnwrapper, type PlainExport, type SealedExport } from './service/sealed-export.ts';
export type { FileStatus } from './storage/manifest.ts';
export type { ByteRange, RangeRequest } from './byte-range.ts';
export { ConfigError, type StorageConfig } from './config.ts';
export {
  IdentityProviderUnavailableError,
  RangeNotSatisfiableError,
  StorageAuthenticationError,
  StorageConnectionError,
  FileIdInUseError,
  StorageError,
  StorageFileCorruptedError,
  StorageFileNotFoundError,
  StorageFileNotReadyError,
  StorageFileSizeError,
  StorageMetadataError,
  StorageOperationError,
  StorageQuotaError,
  StorageTimeoutError,
  UnauthorizedError,
  UploadNotOpenError,
  ValidationError,
  type ErrorContext,
} from './errors/catalogue.ts';
