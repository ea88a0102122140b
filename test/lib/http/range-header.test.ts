import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../lib/errors/catalogue.ts';
import { parseRangeHeader } from '../../../lib/http/range-header.ts';

describe('parseRangeHeader', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100 }],
    ['bytes=-5', { suffix: 5 }],
    [' BYTES = 1 - 2 ', { start: 1, end: 2 }],
  ])('reads %s', (header, expected) => {
    expect(parseRangeHeader(header, 'f')).toEqual(expected);
  });

  it('treats no header as no range', () => {
    expect(parseRangeHeader(undefined, 'f')).toBeUndefined();
    expect(parseRangeHeader('', 'f')).toBeUndefined();
  });

  it.each(['bytes=-', 'bytes=1-2,4-5', 'lines=1-2', 'bytes=a-b', 'bytes=99999999999999999999-'])('refuses %s', (header) => {
    expect(() => parseRangeHeader(header, 'f')).toThrow(ValidationError);
  });
});
