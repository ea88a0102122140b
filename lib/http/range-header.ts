import { ValidationError } from '../errors/catalogue.ts';
import type { RangeRequest } from '../storage/storage-service.ts';

/**
 * Reads a `Range` header as RFC 9110 §14.2 asks of a server:
 * - a unit other than `bytes` is ignored (the request is served whole);
 * - positions of any length are read, so `bytes=0-99999999999999999999` is a last position
 *   past the end (clamped later), not an error;
 * - several ranges are returned as they are; the service serves one part covering them;
 * - empty list elements are ignored (RFC 9110 §5.6.1.2), up to 100 elements in all.
 * A `bytes` range that is not a range at all (`bytes=abc`) is refused with 400, which tells a
 * hand-written client more than silently serving the whole file would.
 */
export function parseRangeHeader(header: string | undefined, fileId: string): RangeRequest[] | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const unit = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=/.exec(header);
  if (unit && unit[1]!.toLowerCase() !== 'bytes') return undefined;
  const invalid = () =>
    new ValidationError('Range must be bytes=start-end, bytes=start- or bytes=-suffix (several separated by commas).', {
      operation: 'getFile',
      fileId,
    });
  if (!unit) throw invalid();
  const elements = header.slice(unit[0].length).split(',');
  if (elements.length > 100) throw invalid();
  // RFC 9110 §5.6.1.2: empty list elements (`bytes=0-1,,5-6`, `bytes=,0-1`) are ignored; at least one range must remain.
  const specs = elements.filter((element) => element.trim() !== '');
  if (specs.length === 0) throw invalid();
  return specs.map((spec) => {
    const match = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(spec);
    if (!match) throw invalid();
    const [, first = '', last = ''] = match;
    if (first === '' && last === '') throw invalid();
    // Number() of a long digit string is a huge float (or Infinity): past any end, which is what it means.
    if (first === '') return { suffix: Number(last) };
    return last === '' ? { start: Number(first) } : { start: Number(first), end: Number(last) };
  });
}

