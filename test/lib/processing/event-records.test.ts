import { describe, expect, it } from 'vitest';
import { decodeS3Key, objectCreatedRecords } from '../../../lib/processing/event-records.ts';
import { encodeNotificationKey, s3Event } from '../../support/lambda-events.ts';

describe('objectCreatedRecords', () => {
  it('reads AWS and MinIO records alike, decoding form-encoded keys', () => {
    const key = 'uploads/a b+c%d/é.wav';
    for (const flavour of ['aws', 'minio'] as const) {
      expect(objectCreatedRecords(s3Event('bucket', key, { flavour, size: 7 }))).toEqual([
        { bucket: 'bucket', key, size: 7, eTag: 'etag' },
      ]);
    }
    expect(encodeNotificationKey('a b+c')).toBe('a+b%2Bc');
    // As MinIO sent it for `uploads/my song+1 (ü).mp3` (captured from a real webhook delivery).
    expect(decodeS3Key('uploads%2Fmy+song%2B1+%28%C3%BC%29.mp3')).toBe('uploads/my song+1 (ü).mp3');
    expect(decodeS3Key('a+b%2Bc')).toBe('a b+c');
  });

  it('reads EventBridge Object Created events', () => {
    const event = { 'detail-type': 'Object Created', detail: { bucket: { name: 'b' }, object: { key: 'uploads/x+y', size: 3, etag: 'e' } } };
    expect(objectCreatedRecords(event)).toEqual([{ bucket: 'b', key: 'uploads/x y', size: 3, eTag: 'e' }]);
  });

  it('never throws on a key that is not valid percent-encoding: it is passed on as it came', () => {
    const poison = { Records: [{ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key: 'uploads%2F%E0%A4%A' } } }] };
    expect(objectCreatedRecords(poison)).toEqual([{ bucket: 'b', key: 'uploads%2F%E0%A4%A', size: undefined, eTag: undefined }]);
  });

  it('drops records whose bucket or key is not a string, whatever else they say', () => {
    for (const key of [null, 7, { a: 1 }, ['uploads/x']]) {
      expect(objectCreatedRecords({ Records: [{ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key } } }] })).toEqual([]);
      expect(objectCreatedRecords({ 'detail-type': 'Object Created', detail: { bucket: { name: 'b' }, object: { key } } })).toEqual([]);
    }
    expect(objectCreatedRecords({ Records: [{ eventName: 7, s3: { bucket: { name: 'b' }, object: { key: 'k' } } }] })).toEqual([]);
    expect(objectCreatedRecords({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 5 }, object: { key: 'k' } } }] })).toEqual([]);
  });

  it('drops removals, test events and garbage', () => {
    const removal = s3Event('b', 'k');
    removal.Records[0]!.eventName = 'ObjectRemoved:Delete';
    expect(objectCreatedRecords(removal)).toEqual([]);
    expect(objectCreatedRecords({ Event: 's3:TestEvent', Service: 'Amazon S3' })).toEqual([]);
    expect(objectCreatedRecords(null)).toEqual([]);
    expect(objectCreatedRecords({ Records: [null, 3, {}] })).toEqual([]);
  });
});
