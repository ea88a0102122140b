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

describe('objectCreatedRecords: shapes it must survive without throwing', () => {
  const created = (s3: unknown) => ({ Records: [{ eventName: 'ObjectCreated:Put', s3 }] });
  const bridge = (detail: unknown, detailType = 'Object Created') => ({ 'detail-type': detailType, detail });

  it('drops a notification record missing its bucket, its object, or a bucket name', () => {
    expect(objectCreatedRecords(created({ object: { key: 'uploads/k' } }))).toEqual([]);
    expect(objectCreatedRecords(created({ bucket: { name: 'b' } }))).toEqual([]);
    expect(objectCreatedRecords(created({ bucket: { name: '' }, object: { key: 'uploads/k' } }))).toEqual([]);
    expect(objectCreatedRecords(created(undefined))).toEqual([]);
  });

  it('keeps an object-created record without size or ETag, with those left undefined', () => {
    expect(objectCreatedRecords(created({ bucket: { name: 'b' }, object: { key: 'uploads/k' } }))).toEqual([
      { bucket: 'b', key: 'uploads/k', size: undefined, eTag: undefined },
    ]);
  });

  it('drops an EventBridge event missing its bucket or its object', () => {
    expect(objectCreatedRecords(bridge({ object: { key: 'uploads/k' } }))).toEqual([]);
    expect(objectCreatedRecords(bridge({ bucket: { name: 'b' } }))).toEqual([]);
    expect(objectCreatedRecords(bridge({ bucket: { name: 5 }, object: { key: 'uploads/k' } }))).toEqual([]);
    expect(objectCreatedRecords(bridge(undefined))).toEqual([]);
  });

  it('drops EventBridge events of other kinds, however complete', () => {
    const detail = { bucket: { name: 'b' }, object: { key: 'uploads/k', size: 1, etag: 'e' } };
    expect(objectCreatedRecords(bridge(detail, 'Object Deleted'))).toEqual([]);
    expect(objectCreatedRecords({ detail })).toEqual([]);
  });

  it('returns nothing for payloads that are not objects, or records that are not', () => {
    for (const payload of [undefined, 'Records', 42, true]) expect(objectCreatedRecords(payload)).toEqual([]);
    // A hand-made invocation (or a test) can hold undefined where JSON cannot.
    expect(objectCreatedRecords({ Records: [undefined, 'x', created({ bucket: { name: 'b' }, object: { key: 'k' } }).Records[0]] })).toEqual([
      { bucket: 'b', key: 'k', size: undefined, eTag: undefined },
    ]);
  });

  it('keeps every object-created record of a batch, in order, and only those', () => {
    const batch = {
      Records: [
        { eventName: 's3:ObjectCreated:CompleteMultipartUpload', s3: { bucket: { name: 'b' }, object: { key: 'uploads/1', size: 1, eTag: 'e1' } } },
        { eventName: 'ObjectRemoved:Delete', s3: { bucket: { name: 'b' }, object: { key: 'uploads/2' } } },
        { eventName: 'ObjectCreated:Copy', s3: { bucket: { name: 'b' }, object: { key: 'uploads/3', size: 3, eTag: 'e3' } } },
      ],
    };
    expect(objectCreatedRecords(batch)).toEqual([
      { bucket: 'b', key: 'uploads/1', size: 1, eTag: 'e1' },
      { bucket: 'b', key: 'uploads/3', size: 3, eTag: 'e3' },
    ]);
  });
});
