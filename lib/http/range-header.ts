import { ValidationError } from '../errors/catalogue.ts';
import type { RangeRequest } from '../storage/storage-service.ts';

/** Parses a single `Range: bytes=…` header (RFC 9110 §14.1.2). Several ranges at once are refused. */
export function parseRangeHeader(header: string | undefined, fileId: string): RangeRequest | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  const invalid = () =>
    new ValidationError('Range must be one range of the form bytes=start-end, bytes=start- or bytes=-suffix.', {
      operation: 'getFile',
      fileId,
    });
  if (!match) throw invalid();
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') throw invalid();
  if (first === '') return { suffix: Number(last) };
  const start = Number(first);
  if (!Number.isSafeInteger(start)) throw invalid();
  if (last === '') return { start };
  const end = Number(last);
  if (!Number.isSafeInteger(end)) throw invalid();
  return { start, end };
}
