import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, GetBucketLifecycleConfigurationCommand, GetBucketVersioningCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sendToBucket, sha256 } from '../support/client-journey.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

/**
 * No plaintext of a recording at rest on MinIO's disk, at any moment: not while the upload
 * waits for processing, not after it is sealed, not in MinIO's trash of deleted objects
 * (.minio.sys/tmp/.trash keeps them for minutes). The stack's MinIO runs with a KMS key and
 * npm start sets the buckets' default encryption; the client uploads with the product's
 * presigned POST, which names no encryption.
 */

const SIZE = 2 * 1024 * 1024;
let stack: IsolatedStack;
let client: Client;

beforeAll(async () => {
  stack = await startIsolatedStack();
  client = new Client(() => stack.product.api, await stack.token('alice'));
}, 180_000);
afterAll(async () => {
  await stack?.close();
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Every file under MinIO's data dir (.minio.sys and its trash included) that holds one of `markers`. */
function foundAtRest(markers: Buffer[]): string[] {
  const hits: string[] = [];
  for (const file of filesUnder(stack.minio.dataDir)) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      continue; // removed by MinIO while we listed
    }
    for (const marker of markers) if (bytes.includes(marker)) hits.push(`${file.slice(stack.minio.dataDir.length)} holds ${marker.toString('hex').slice(0, 16)}…`);
  }
  return hits;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('no plaintext at rest on MinIO', () => {
  it('finds plaintext where a bucket has no default encryption: the scan sees what MinIO stores', async () => {
    const marker = Buffer.from(`transcribo-control-${randomBytes(12).toString('hex')}`);
    const Bucket = `control-${randomBytes(3).toString('hex')}`;
    await stack.admin.send(new CreateBucketCommand({ Bucket }));
    // One inlined in xl.meta, one in a part file of its own.
    await stack.admin.send(new PutObjectCommand({ Bucket, Key: 'small', Body: Buffer.concat([marker, randomBytes(1000)]) }));
    await stack.admin.send(new PutObjectCommand({ Bucket, Key: 'large', Body: Buffer.concat([randomBytes(SIZE / 2), marker, randomBytes(SIZE / 2)]) }));
    expect(foundAtRest([marker])).toHaveLength(2);
  });

  it('keeps an upload encrypted from the moment it lands, through processing, and deletes it once sealed', async () => {
    const audio = wav(SIZE);
    const head = Buffer.from(`TRANSCRIBO-PLAINTEXT-MARKER-${randomBytes(12).toString('hex')}`);
    head.copy(audio, 44);
    const middle = Buffer.from(audio.subarray(SIZE / 2, SIZE / 2 + 48));
    const markers = [head, middle];

    const created = await client.create(audio);
    // Functions down: the upload waits in the incoming bucket, as it does between landing and processing.
    await stack.product.stop();
    await sendToBucket(created, audio);
    const { incomingBucket, bucket } = stack.config;
    const landed = (await stack.admin.send(new ListObjectsV2Command({ Bucket: incomingBucket, Prefix: 'uploads/' }))).Contents ?? [];
    const upload = landed.find((o) => o.Key!.includes(created.fileId));
    expect(upload, 'the upload is in the incoming bucket').toBeDefined();
    // Soft: a failure reports where plaintext was both before and after processing.
    expect.soft(foundAtRest(markers), 'plaintext of the waiting upload').toEqual([]);
    const atRest = await stack.admin.send(new HeadObjectCommand({ Bucket: incomingBucket, Key: upload!.Key! }));
    expect.soft(atRest.ServerSideEncryption).toBe('AES256');

    await stack.restartProduct();
    const info = await client.settled(created.fileId, { timeoutMs: 90_000 });
    expect(info).toMatchObject({ status: 'ready', size: SIZE, sha256: sha256(audio) });
    expect(await client.readBack(created.fileId, SIZE)).toBe(sha256(audio));

    // Sealed means gone from the incoming bucket; npm start's event probe of its restart may still be there.
    const left = await stack.leftovers();
    expect(left.incoming.filter((k) => !k.startsWith('uploads/transcribo-event-probe-'))).toEqual([]);
    // The deleted upload now sits in MinIO's trash: it must be ciphertext there too.
    expect.soft(foundAtRest(markers), 'plaintext after ready').toEqual([]);
    await sleep(2000);
    expect.soft(foundAtRest(markers), 'plaintext 2 s after ready').toEqual([]);
    for (const key of [`manifests/${created.fileId}.json`, `files/${created.fileId}`]) {
      expect((await stack.admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ServerSideEncryption, key).toBe('AES256');
    }
  }, 180_000);

  it('npm start versions the final bucket with the recovery window: deleted recordings are kept 7 days, then expire', async () => {
    const Bucket = stack.config.bucket;
    expect((await stack.admin.send(new GetBucketVersioningCommand({ Bucket }))).Status).toBe('Enabled');
    const { Rules } = await stack.admin.send(new GetBucketLifecycleConfigurationCommand({ Bucket }));
    expect(Rules).toEqual([expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: expect.objectContaining({ NoncurrentDays: 7 }) })]);
    expect(stack.product.output()).toContain(`recovery window on ${Bucket}: versioned, deleted recordings restorable for 7 days`);
  });
});
