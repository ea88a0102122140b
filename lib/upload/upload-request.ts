import { z } from 'zod';
import { CONTENT_TYPES, extensionOf, type AudioExtension } from '../audio-formats.ts';
import type { StorageConfig } from '../config.ts';
import { StorageFileSizeError, ValidationError } from '../errors/catalogue.ts';

/**
 * What a client may ask for in `POST /files`, checked before anything is written or signed.
 */

const METADATA_LIMIT_BYTES = 1024;

const bodySchema = z.strictObject({
  filename: z
    .string()
    .min(1)
    .max(255)
    .refine((s) => !/[\u0000-\u001f\u007f/\\]/.test(s), 'must not contain control characters or slashes')
    // A lone surrogate (JSON's "\ud800") is no text: it cannot be percent-encoded into the Content-Disposition it is served with.
    .refine((s) => s.isWellFormed(), 'must be well-formed Unicode (no lone surrogates)'),
  contentType: z.string().max(100).transform((s) => s.toLowerCase().split(';')[0]!.trim()),
  size: z.number().int().min(1, 'must be at least 1 byte'),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal characters')
    .transform((s) => s.toLowerCase())
    .optional(),
  metadata: z
    .record(z.string().regex(/^[a-z0-9_-]{1,64}$/, 'keys are 1-64 of a-z 0-9 _ -'), z.string().max(256))
    .refine((m) => Object.keys(m).length <= 16, 'at most 16 entries')
    .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= METADATA_LIMIT_BYTES, `at most ${METADATA_LIMIT_BYTES} bytes in all`)
    .optional(),
  uploadMethod: z.enum(['POST', 'PUT', 'MULTIPART']).default('POST'),
  /** For MULTIPART: the part size the client would like (bytes); the server may enlarge it. */
  partSize: z.number().int().min(5 * 1024 * 1024, 'must be at least 5 MiB').max(5 * 1024 ** 3, 'must be at most 5 GiB').optional(),
});

/** `POST /files/{id}/parts`: which parts to sign, and (for a client that created the upload itself) its id. */
export const partsRequestSchema = z.strictObject({
  partNumbers: z.array(z.number().int().positive()).min(1).max(100),
  uploadId: z.string().min(1).max(1024).optional(),
});

/** `POST /files/{id}/s3-requests`: the S3 request an S3-speaking client (Uppy 6's signRequest) wants signed. */
export const s3RequestSchema = z.object({
  method: z.enum(['PUT', 'POST', 'GET', 'DELETE']),
  uploadId: z.string().min(1).max(1024).optional(),
  partNumber: z.number().int().positive().optional(),
  // Uppy also sends the key (which must be the file's own) and a content type (the declared one is signed instead).
  key: z.string().max(1024).optional(),
  contentType: z.string().max(200).optional(),
});

/** Validates a small JSON request body with a schema, as a ValidationError naming what is wrong. */
export function parseBody<T>(schema: z.ZodType<T>, input: unknown, operation: string): T {
  const result = schema.safeParse(input);
  if (!result.success) {
    // zod reports a record key that fails its own check as "Invalid key in record", the key's
    // message nested beneath: the nested one is what tells the caller what a key may be.
    const message = (i: z.core.$ZodIssue) => (i.code === 'invalid_key' && i.issues[0] !== undefined ? i.issues[0].message : i.message);
    const issues = result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${message(i)}`);
    throw new ValidationError(`Invalid request: ${issues.join('; ')}`, { operation, details: { issues } });
  }
  return result.data;
}

/**
 * What browsers and phones say when they do not know a file's type: nothing, or "some bytes"
 * (common for .m4a). The extension is allowed through; the magic bytes decide at processing.
 */
const GENERIC_TYPES = ['', 'application/octet-stream', 'binary/octet-stream'];

export interface UploadRequest {
  filename: string;
  /** The type the file is recorded with: the declared one, or the extension's own when the declared one says nothing. */
  contentType: string;
  /** The type the client will send with its upload (signed or pinned by the policy); undefined when it sends none. */
  uploadContentType: string | undefined;
  extension: AudioExtension;
  size: number;
  sha256?: string | undefined;
  metadata?: Record<string, string> | undefined;
  uploadMethod: 'POST' | 'PUT' | 'MULTIPART';
  partSize?: number | undefined;
}

const OPERATION = 'createUpload';

/** Validates a create-upload body (already JSON-parsed) against the schema and the configured rules. */
export function parseUploadRequest(input: unknown, config: Pick<StorageConfig, 'allowedExtensions' | 'maxFileSize'>): UploadRequest {
  const body = parseBody(bodySchema, input, OPERATION);
  const extension = extensionOf(body.filename);
  if (!(config.allowedExtensions as readonly string[]).includes(extension)) {
    throw new ValidationError(
      `Files of type "${extension || '(none)'}" are not accepted; allowed: ${config.allowedExtensions.join(', ')}.`,
      { operation: OPERATION },
    );
  }
  const ext = extension as AudioExtension;
  const generic = GENERIC_TYPES.includes(body.contentType);
  if (!generic && !CONTENT_TYPES[ext].includes(body.contentType)) {
    throw new ValidationError(
      `Content type "${body.contentType}" does not fit a .${ext} file; use one of ${CONTENT_TYPES[ext].join(', ')}.`,
      { operation: OPERATION },
    );
  }
  if (body.size > config.maxFileSize) {
    throw new StorageFileSizeError(`File is ${body.size} bytes; the limit is ${config.maxFileSize} bytes.`, {
      operation: OPERATION,
      details: { size: body.size, limit: config.maxFileSize },
    });
  }
  return {
    ...body,
    extension: ext,
    contentType: generic ? CONTENT_TYPES[ext][0]! : body.contentType,
    uploadContentType: body.contentType === '' ? undefined : body.contentType,
  };
}
