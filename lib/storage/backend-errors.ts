import {
  StorageAuthenticationError,
  StorageConnectionError,
  StorageError,
  StorageFileNotFoundError,
  StorageOperationError,
} from '../errors/catalogue.ts';

/**
 * Turns whatever the AWS SDK throws into the catalogue. The backend's code and status go
 * into `details` for the logs; the caller only ever sees the catalogue's fixed message.
 */

const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AccessDenied',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
]);
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound', 'NoSuchUpload']);
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'TimeoutError',
  'RequestTimeout',
  'SlowDown',
  'ServiceUnavailable',
  'XMinioServerNotInitialized',
]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
}

export function backendCode(error: unknown): string | undefined {
  const e = error as SdkErrorShape | undefined;
  return e?.code ?? e?.name;
}

export function httpStatusOf(error: unknown): number | undefined {
  return (error as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

/** True when S3 answered 412 to a conditional request (If-Match / If-None-Match). */
export function isPreconditionFailed(error: unknown): boolean {
  return httpStatusOf(error) === 412 || backendCode(error) === 'PreconditionFailed';
}

export function isNotFound(error: unknown): boolean {
  return NOT_FOUND_CODES.has(backendCode(error) ?? '') || httpStatusOf(error) === 404;
}

export function toStorageError(error: unknown, operation: string, fileId?: string): StorageError {
  if (error instanceof StorageError) return error;
  const code = backendCode(error);
  const status = httpStatusOf(error);
  const details = { backendCode: code, backendStatus: status, backendMessage: (error as SdkErrorShape)?.message };
  const context = { operation, fileId, details, cause: error };
  const causeCode = (error as { cause?: { code?: string } })?.cause?.code;
  if (code !== undefined && CREDENTIAL_CODES.has(code)) {
    return new StorageAuthenticationError('The storage backend refused the credentials.', context);
  }
  if (code !== undefined && NOT_FOUND_CODES.has(code)) {
    return new StorageFileNotFoundError('File not found.', context);
  }
  if ((code !== undefined && CONNECTION_CODES.has(code)) || (causeCode !== undefined && CONNECTION_CODES.has(causeCode)) || status === 503) {
    return new StorageConnectionError('The storage backend is unreachable.', context);
  }
  return new StorageOperationError(`Storage operation ${operation} failed.`, context);
}

/** Awaits a backend call and maps its failure into the catalogue. */
export async function backend<T>(operation: string, fileId: string | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toStorageError(error, operation, fileId);
  }
}
