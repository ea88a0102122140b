import { RangeNotSatisfiableError, ValidationError } from './errors/catalogue.ts';

/**
 * Byte ranges from the `Range` header to the bytes served: parsing (RFC 9110 §14.2), bounding
 * a range to what one response may carry, and resolving it against the file's size. The
 * encrypted format's own mapping of a plaintext range to sealed frames is frame-format.ts's.
 */

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

/** A byte range as HTTP states it: `start-end`, `start-` (open end) or `-suffix` (last bytes). */
export type RangeRequest = { start: number; end?: number } | { suffix: number };

/** A range that starts at a position, shortened to `maxLength` bytes; other ranges as they are. */
export function boundRange(request: RangeRequest, maxLength: number | undefined): RangeRequest {
  if ('suffix' in request || maxLength === undefined) return request;
  const end = Math.min(request.end ?? Infinity, request.start + maxLength - 1);
  return Number.isFinite(end) ? { start: request.start, end } : { start: request.start };
}

/**
 * RFC 9110 §14.1.2 and §15.3.7: each range is clamped to the file; those that cannot be
 * satisfied (first position past the end, a last position before the first, an empty suffix)
 * are dropped, and 416 answers only when none is left. What remains is served as one part
 * covering it, shortened to `maxLength` from its start.
 */
export function resolveRange(requests: readonly RangeRequest[], total: number, fileId: string, maxLength?: number): ByteRange {
  const satisfiable = requests.flatMap((request): ByteRange[] => {
    if ('suffix' in request) return request.suffix > 0 ? [{ start: Math.max(0, total - request.suffix), end: total - 1 }] : [];
    if (request.start >= total || (request.end !== undefined && request.end < request.start)) return [];
    return [{ start: request.start, end: Math.min(request.end ?? total - 1, total - 1) }];
  });
  if (satisfiable.length === 0) {
    throw new RangeNotSatisfiableError(`Range cannot be satisfied; the file has ${total} bytes.`, {
      operation: 'getFile',
      fileId,
      details: { total },
    });
  }
  const start = Math.min(...satisfiable.map((r) => r.start));
  const end = Math.max(...satisfiable.map((r) => r.end));
  return { start, end: maxLength === undefined ? end : Math.min(end, start + maxLength - 1) };
}

/** A range of a file's bytes, clamped to it. */
export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}
