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
// OpenSSL's verification results as Node names them, and Node's own host-name check: the
// server answered, but with a certificate we do not trust.
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** 'certificate' when the server's certificate is not trusted, 'handshake' when TLS itself failed (https against plain http is EPROTO). */
function tlsFailure(code: string | undefined): 'certificate' | 'handshake' | undefined {
  if (code === undefined) return undefined;
  if (CERTIFICATE_CODES.has(code)) return 'certificate';
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'handshake';
  return undefined;
}

const TLS_FAILURES = {
  certificate: {
    message: "The storage backend's TLS certificate is not trusted.",
    hint: 'set STORAGE_CA_FILE to a PEM file holding the CA that signed the storage endpoint\'s certificate, and check the certificate names the host in STORAGE_ENDPOINT and has not expired',
  },
  handshake: {
    message: 'The TLS connection to the storage backend failed.',
    hint: 'check STORAGE_SECURE: https to a server that speaks plain http fails this way',
  },
} as const;

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
  const tls = tlsFailure(code) ?? tlsFailure(causeCode);
  if (tls !== undefined) {
    const { message, hint } = TLS_FAILURES[tls];
    // An operator reading the answer must look at certificates, not at whether the server is up.
    return new StorageConnectionError(message, { ...context, details: { ...details, hint }, publicMessage: message });
  }
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

/** Tries of a conditional create that S3 answers 409 (another conditional write of the key under way). */
const CREATE_TRIES = 4;

/**
 * `send` is a write made only if its key is absent (If-None-Match: *): its answer, or undefined
 * when the key exists (nothing written). S3 answers 409 to two such writes of one key at once;
 * the next try learns who won.
 */
export async function createIfAbsent<T>(send: () => Promise<T>, operation: string, fileId: string): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (isPreconditionFailed(error)) return undefined;
      if (httpStatusOf(error) === 409 && attempt < CREATE_TRIES) {
        await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
        continue;
      }
      throw toStorageError(error, operation, fileId);
    }
  }
}
