/**
 * The one error catalogue of the project. Every failure that leaves `lib/` is one of these
 * classes; `lib/http/error-response.ts` is the only place that turns them into HTTP.
 *
 * Two families, told apart by `expose`:
 * - the caller's mistakes (validation, size, not found, not ready, authentication) answer 4xx
 *   and their message is written for the caller;
 * - the backend's failures (credentials refused, unreachable, unexpected answers, corrupted
 *   data) answer 5xx with a fixed message: the backend's own text stays in `details`, which
 *   is logged but never rendered.
 */

export interface ErrorContext {
  operation: string;
  fileId?: string | undefined;
  details?: Record<string, unknown> | undefined;
  cause?: unknown;
  /** A fixed sentence for the caller where the status's generic one would send them the wrong way (a TLS failure is not "unreachable"). */
  publicMessage?: string;
}

export class StorageError extends Error {
  /** HTTP status the error renders as. */
  readonly status: number = 500;
  /** Whether `message` may be shown to the caller as it is. */
  readonly expose: boolean = false;
  readonly #publicMessage: string | undefined;
  readonly operation: string;
  readonly fileId: string | undefined;
  readonly details: Record<string, unknown>;
  readonly timestamp: string;

  constructor(message: string, context: ErrorContext) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.operation = context.operation;
    this.fileId = context.fileId;
    this.details = context.details ?? {};
    this.#publicMessage = context.publicMessage;
    this.timestamp = new Date().toISOString();
  }

  /** Headers the response must carry besides the body (RFC 9110 asks some of them). */
  get responseHeaders(): Record<string, string> {
    return {};
  }

  /** Message for the caller: the real one when it is the caller's business, a fixed one otherwise. */
  get publicMessage(): string {
    if (this.#publicMessage !== undefined) return this.#publicMessage;
    return this.expose ? this.message : GENERIC_MESSAGES[this.status] ?? 'The storage backend failed.';
  }
}

const GENERIC_MESSAGES: Record<number, string> = {
  500: 'The storage backend failed; the request can be retried later.',
  502: 'The storage backend refused our credentials; the operators have been told.',
  503: 'The storage backend is unreachable; retry later.',
  504: 'The request did not finish in time; retry later.',
};

/** The storage server refused our credentials or signature: an operator problem, never the caller's. */
export class StorageAuthenticationError extends StorageError {
  override readonly status = 502;
}

/** The storage server could not be reached (refused, reset, DNS, timeout). */
export class StorageConnectionError extends StorageError {
  override readonly status = 503;
}

/** The function ran out of time (or was cut off) before it could answer. */
export class StorageTimeoutError extends StorageError {
  override readonly status = 504;
}

/** The storage server answered something unexpected. */
export class StorageOperationError extends StorageError {
  override readonly status = 500;
}

/**
 * The owner has used up their storage allowance (lib/storage/owner-quotas.ts). 409, as RFC 9110
 * has it: the request conflicts with the current state of the owner's files, and the caller can
 * resolve that (delete recordings) and send it again. Not 413 (the request itself is not too
 * large, and a file count is no size), nor 507 (a 5xx says the server failed, and is retried).
 */
export class StorageQuotaError extends StorageError {
  override readonly status = 409;
  override readonly expose = true;
}

/** The declared or actual size is outside what is allowed. */
export class StorageFileSizeError extends StorageError {
  override readonly status = 413;
  override readonly expose = true;
}

/** No such file for this caller (also answered for files of other owners). */
export class StorageFileNotFoundError extends StorageError {
  override readonly status = 404;
  override readonly expose = true;
}

/** The stored bytes fail authentication or their recorded SHA-256: never served as they are. */
export class StorageFileCorruptedError extends StorageError {
  override readonly status = 500;
}

/** A manifest or object metadata is missing, unreadable or of an unknown version. */
export class StorageMetadataError extends StorageError {
  override readonly status = 500;
}

/** The file exists but has no content to serve yet (awaiting upload, processing, rejected, failed). */
export class StorageFileNotReadyError extends StorageError {
  override readonly status = 409;
  override readonly expose = true;
}

/**
 * A caller chose a fileId (the library's `storeFile`) that is already in use: a file of any
 * owner, in any state, or one deleted while not yet settled whose leftovers the sweep has not
 * cleared. 409: the request conflicts with what is stored; the existing file is left as it is,
 * and another id succeeds. Never a write over it, never an adoption of it.
 */
export class FileIdInUseError extends StorageError {
  override readonly status = 409;
  override readonly expose = true;
}

/** The file takes no more uploads: it is past awaiting one, or its upload window has closed. */
export class UploadNotOpenError extends StorageError {
  override readonly status = 409;
  override readonly expose = true;
}

/** The request itself is malformed: bad JSON, a field out of range, a bad Range header. */
export class ValidationError extends StorageError {
  override readonly status: number = 400;
  override readonly expose = true;
}

/** A Range header that cannot be satisfied by the file's size. */
export class RangeNotSatisfiableError extends ValidationError {
  override readonly status = 416;

  /** RFC 9110 §15.5.17: a 416 says how large the file is, so a player can ask again within it. */
  override get responseHeaders(): Record<string, string> {
    return typeof this.details.total === 'number' ? { 'Content-Range': `bytes */${this.details.total}` } : {};
  }
}

/** The identity provider's key set (JWKS) could not be read: no caller's token can be checked, through no fault of theirs. */
export class IdentityProviderUnavailableError extends StorageError {
  override readonly status = 503;

  // The generic 503 text speaks of the storage backend; this one must not send operators there.
  override get publicMessage(): string {
    return 'The identity provider cannot be reached to check the token; retry later.';
  }
}

/** No bearer token, or one that does not verify. */
export class UnauthorizedError extends StorageError {
  override readonly status = 401;
  override readonly expose = true;
}
