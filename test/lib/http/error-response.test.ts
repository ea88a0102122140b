import { describe, expect, it } from 'vitest';
import * as catalogue from '../../../lib/errors/catalogue.ts';
import { StorageError } from '../../../lib/errors/catalogue.ts';
import { asCatalogueError, renderError } from '../../../lib/http/error-response.ts';

/**
 * What a caller reads in an error body. A 5xx says a fixed sentence for its status (or the fixed
 * sentence its error was given), never the message the code wrote for the logs, which may name a
 * bucket, a key, an endpoint or the backend's own words; a 4xx says the caller's mistake in words
 * written for the caller.
 */

const INTERNAL = 'GetObject s3://transcribo-files/manifests/x.json failed: AccessDenied at http://10.0.0.7:9000 (key AKIAEXAMPLE)';
type ErrorClass = new (message: string, context: catalogue.ErrorContext) => StorageError;
const classes = (Object.values(catalogue) as unknown[]).filter((value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof StorageError);

const render = (error: StorageError) => {
  const reply = renderError(error, 'req-1');
  return { status: reply.statusCode!, body: JSON.parse(reply.body as string).error };
};

describe('renderError', () => {
  it('knows every class of the catalogue', () => {
    expect(classes.length).toBeGreaterThanOrEqual(14);
  });

  it.each(classes.map((c) => [c.name, c] as const))('%s: a 5xx body says a fixed sentence, never the internal message', (name, ErrorClass) => {
    const { status, body } = render(new ErrorClass(INTERNAL, { operation: 'getFile', fileId: 'f-1', details: { bucket: 'transcribo-files' } }));
    expect(body).toMatchObject({ type: name, operation: 'getFile', fileId: 'f-1', requestId: 'req-1' });
    expect(Object.keys(body).sort()).toEqual(['fileId', 'message', 'operation', 'requestId', 'timestamp', 'type']);
    if (status >= 500) {
      expect(body.message).not.toContain('transcribo-files');
      expect(body.message).not.toBe(INTERNAL);
      expect(body.message).toMatch(/^The (storage backend|request|key|identity)/);
    } else {
      // A caller's mistake is explained to the caller in the words its code wrote for them.
      expect(body.message).toBe(INTERNAL);
    }
  });

  it('gives the fixed sentence of each 5xx status', () => {
    const sentence = (error: StorageError) => render(error).body.message;
    const context = { operation: 'x' };
    expect(sentence(new catalogue.StorageOperationError(INTERNAL, context))).toBe('The storage backend failed; the request can be retried later.');
    expect(sentence(new catalogue.StorageAuthenticationError(INTERNAL, context))).toBe('The storage backend refused our credentials; the operators have been told.');
    expect(sentence(new catalogue.StorageConnectionError(INTERNAL, context))).toBe('The storage backend is unreachable; retry later.');
    expect(sentence(new catalogue.StorageTimeoutError(INTERNAL, context))).toBe('The request did not finish in time; retry later.');
    expect(sentence(new catalogue.StorageConnectionError(INTERNAL, { ...context, publicMessage: 'The storage backend presented a certificate we do not trust.' }))).toBe(
      'The storage backend presented a certificate we do not trust.',
    );
  });

  it('answers JSON that no cache keeps, with the headers the error itself asks for', () => {
    expect(renderError(new catalogue.ValidationError('Bad field.', { operation: 'x' }), 'req-1').headers).toEqual({
      'Content-Type': 'application/json',
      'Cache-Control': 'no-store',
    });
    // RFC 9110 §15.5.17: a 416 says how large the file is.
    const unsatisfiable = renderError(new catalogue.RangeNotSatisfiableError('Past the end.', { operation: 'getFile', details: { total: 12 } }), 'req-1');
    expect(unsatisfiable.statusCode).toBe(416);
    expect(unsatisfiable.headers).toEqual({ 'Content-Range': 'bytes */12', 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  });

  it('leaves fileId out of the body of an error about no particular file', () => {
    const { body } = render(new catalogue.ValidationError('Bad field.', { operation: 'createUpload' }));
    expect(Object.keys(body).sort()).toEqual(['message', 'operation', 'requestId', 'timestamp', 'type']);
  });

  it('renders anything thrown that is not of the catalogue as a 500 with the fixed sentence', () => {
    const { status, body } = render(asCatalogueError(new TypeError(`Cannot read properties of undefined (reading 'Body') ${INTERNAL}`), 'getFile'));
    expect(status).toBe(500);
    expect(body).toMatchObject({ type: 'StorageOperationError', message: 'The storage backend failed; the request can be retried later.' });
  });
});

describe('asCatalogueError', () => {
  it('passes an error of the catalogue through as it is', () => {
    const error = new catalogue.StorageFileNotFoundError('No such file.', { operation: 'getFile', fileId: 'f-1' });
    expect(asCatalogueError(error, 'deleteFile')).toBe(error);
  });

  // middy's early timeout throws an error of this name just before the function's own time is up.
  it('makes a TimeoutError a 504, keeping it as the cause', () => {
    const timeout = Object.assign(new Error('Timeout'), { name: 'TimeoutError' });
    const error = asCatalogueError(timeout, 'getFile');
    expect(error).toBeInstanceOf(catalogue.StorageTimeoutError);
    expect(error).toMatchObject({ status: 504, message: 'The function ran out of time.', operation: 'getFile', cause: timeout });
  });

  it('makes anything else an internal 500, keeping it as the cause for the logs', () => {
    const thrownValue = new TypeError("Cannot read properties of undefined (reading 'Body')");
    const error = asCatalogueError(thrownValue, 'getFile');
    expect(error).toBeInstanceOf(catalogue.StorageOperationError);
    expect(error).toMatchObject({ status: 500, message: 'Internal error.', operation: 'getFile', cause: thrownValue });
  });

  // `throw undefined` and `throw null` are legal JavaScript: rendering them must not fail in turn.
  it.each([undefined, null, 'a string', 42])('makes a thrown %j an internal 500', (value) => {
    const error = asCatalogueError(value, 'getFile');
    expect(error).toBeInstanceOf(catalogue.StorageOperationError);
    expect(error.operation).toBe('getFile');
  });
});
