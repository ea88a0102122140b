/**
 * Event normalisation. Object-created notifications reach process-upload in three shapes,
 * and all become the same `ObjectCreatedRecord`:
 *
 * - AWS S3 notifications: `{ Records: [{ eventSource: 'aws:s3', eventName: 'ObjectCreated:Put',
 *   s3: { bucket: { name }, object: { key, size, eTag } } }] }`;
 * - MinIO (webhook target or ListenBucketNotification): the same record shape, but event
 *   names carry an `s3:` prefix (`s3:ObjectCreated:Put`) and the payload may wrap the records
 *   with `EventName` / `Key` fields;
 * - EventBridge (S3 → EventBridge): `{ 'detail-type': 'Object Created', detail: { bucket:
 *   { name }, object: { key, size, etag } } }`.
 *
 * In S3 notifications, keys are URL-encoded the way HTML forms encode them: a space is `+`
 * and a real `+` is `%2B`. EventBridge keys are URL-encoded too. Records of other kinds
 * (removals, replication, test events) are dropped here; whether a key is an upload is
 * decided by the caller from the object layout.
 *
 * Normalisation never throws, whatever the payload: a record whose bucket or key is not a string
 * is dropped, and a key that is not valid percent-encoding is passed on as it came (it names no
 * upload, so the caller skips it). An event that fails here would be re-sent by its trigger
 * forever.
 */

export interface ObjectCreatedRecord {
  bucket: string;
  key: string;
  size: number | undefined;
  eTag: string | undefined;
}

interface S3NotificationRecord {
  eventName?: string;
  s3?: { bucket?: { name?: string }; object?: { key?: string; size?: number; eTag?: string } };
}

interface EventBridgeEvent {
  'detail-type'?: string;
  detail?: { bucket?: { name?: string }; object?: { key?: string; size?: number; etag?: string } };
}

export function decodeS3Key(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

function isObjectCreated(eventName: unknown): boolean {
  return typeof eventName === 'string' && eventName.replace(/^s3:/, '').startsWith('ObjectCreated:');
}

function fromNotification(record: S3NotificationRecord): ObjectCreatedRecord | undefined {
  const bucket = record.s3?.bucket?.name;
  const key = record.s3?.object?.key;
  if (!isObjectCreated(record.eventName) || typeof bucket !== 'string' || bucket === '' || typeof key !== 'string') return undefined;
  return { bucket, key: decodeS3Key(key), size: record.s3?.object?.size, eTag: record.s3?.object?.eTag };
}

/** The object-created records an event carries, in order; an empty list for anything else. */
export function objectCreatedRecords(event: unknown): ObjectCreatedRecord[] {
  if (event === null || typeof event !== 'object') return [];
  const records = (event as { Records?: unknown }).Records;
  if (Array.isArray(records)) {
    return records.flatMap((r) => {
      const normalised = r !== null && typeof r === 'object' ? fromNotification(r as S3NotificationRecord) : undefined;
      return normalised ? [normalised] : [];
    });
  }
  const bridge = event as EventBridgeEvent;
  const bucket = bridge.detail?.bucket?.name;
  const object = bridge.detail?.object;
  if (bridge['detail-type'] !== 'Object Created' || typeof bucket !== 'string' || typeof object?.key !== 'string') return [];
  return [{ bucket, key: decodeS3Key(object.key), size: object.size, eTag: object.etag }];
}
