import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { StorageError, StorageOperationError, StorageTimeoutError } from '../errors/catalogue.ts';

/**
 * The one place errors become HTTP. Body: `{"error": {type, message, operation, fileId?,
 * timestamp, requestId}}`; never a stack, a key, a secret or the backend's own words.
 */

export interface ErrorBody {
  error: {
    type: string;
    message: string;
    operation: string;
    fileId?: string;
    timestamp: string;
    requestId: string;
  };
}

/** Anything thrown that is not of the catalogue is an internal failure of ours, or a timeout. */
export function asCatalogueError(error: unknown, operation: string): StorageError {
  if (error instanceof StorageError) return error;
  // middy's early timeout fires this name just before the function's own time is up.
  if ((error as { name?: string } | undefined)?.name === 'TimeoutError') {
    return new StorageTimeoutError('The function ran out of time.', { operation, cause: error });
  }
  return new StorageOperationError('Internal error.', { operation, cause: error });
}

export function renderError(error: StorageError, requestId: string): APIGatewayProxyStructuredResultV2 {
  const body: ErrorBody = {
    error: {
      type: error.name,
      message: error.publicMessage,
      operation: error.operation,
      ...(error.fileId !== undefined && { fileId: error.fileId }),
      timestamp: error.timestamp,
      requestId,
    },
  };
  return {
    statusCode: error.status,
    headers: { ...error.responseHeaders, 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
    body: JSON.stringify(body),
  };
}
