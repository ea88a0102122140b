import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors/catalogue.ts';
import { parseRangeHeader } from '../../lib/byte-range.ts';

describe('parseRangeHeader', () => {
  it.each([
    ['bytes=0-99', [{ start: 0, end: 99 }]],
    ['bytes=100-', [{ start: 100 }]],
    ['bytes=0-', [{ start: 0 }]],
    ['bytes=-5', [{ suffix: 5 }]],
    [' BYTES = 1 - 2 ', [{ start: 1, end: 2 }]],
    ['bytes=0-1, 5-6,-3', [{ start: 0, end: 1 }, { start: 5, end: 6 }, { suffix: 3 }]],
  ])('reads %s', (header, expected) => {
    expect(parseRangeHeader(header, 'f')).toEqual(expected);
  });

  it('reads positions of any length as numbers past any file, not as errors', () => {
    const [range] = parseRangeHeader('bytes=0-99999999999999999999', 'f')!;
    expect(range).toMatchObject({ start: 0 });
    expect((range as { end: number }).end).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
    const [late] = parseRangeHeader('bytes=99999999999999999999-', 'f')!;
    expect((late as { start: number }).start).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
  });

  it('ignores a unit other than bytes (RFC 9110 §14.2), and no header is no range', () => {
    expect(parseRangeHeader('items=0-5', 'f')).toBeUndefined();
    expect(parseRangeHeader('lines=1-2', 'f')).toBeUndefined();
    expect(parseRangeHeader(undefined, 'f')).toBeUndefined();
    expect(parseRangeHeader('', 'f')).toBeUndefined();
    expect(parseRangeHeader(' \t ', 'f')).toBeUndefined();
  });

  // Found by test/e2e/fuzz.test.ts: `bytes=,9999-9999` was a 400, where RFC 9110 §5.6.1.2 has a recipient ignore empty list elements.
  it.each([
    ['bytes=1-2,', [{ start: 1, end: 2 }]],
    ['bytes=,0-1,,5-6', [{ start: 0, end: 1 }, { start: 5, end: 6 }]],
    ['bytes= , -3 ,\t', [{ suffix: 3 }]],
  ])('ignores the empty list elements of %s', (header, expected) => {
    expect(parseRangeHeader(header, 'f')).toEqual(expected);
  });

  it('still counts empty elements towards the 100 a header may hold', () => {
    expect(parseRangeHeader(`bytes=0-1${','.repeat(99)}`, 'f')).toEqual([{ start: 0, end: 1 }]);
    expect(() => parseRangeHeader(`bytes=0-1${','.repeat(100)}`, 'f')).toThrow(ValidationError);
  });

  // A unit is one token at the start of the header: `my items=0-5` has none, so it is malformed, not a unit to ignore.
  it.each(['bytes=-', 'bytes=a-b', 'bytes=', 'bytes=,', 'bytes= , ', 'bytes', '=0-1', 'bytes=0-1-2', 'my items=0-5', 'x bytes=0-1'])('refuses %s', (header) => {
    expect(() => parseRangeHeader(header, 'f')).toThrow(ValidationError);
  });

  it('tells the caller what a range looks like, for the file asked for', () => {
    let error: unknown;
    try {
      parseRangeHeader('bytes=abc', 'f-1');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({
      status: 400,
      message: 'Range must be bytes=start-end, bytes=start- or bytes=-suffix (several separated by commas).',
      operation: 'getFile',
      fileId: 'f-1',
    });
  });
});
