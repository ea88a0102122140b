import { createServer, type Server } from 'node:http';
import { PutBucketNotificationConfigurationCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as processUpload } from '../../functions/process-upload.ts';
import { wav } from '../support/audio-fixtures.ts';
import { requestUpload } from '../support/file-flow.ts';
import { sendUpload } from '../support/http-client.ts';
import { lambdaContext } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * The trigger fed with what MinIO itself sends: `npm test` starts MinIO with a webhook target
 * (TEST_MINIO_WEBHOOK_ARN) pointing at TEST_MINIO_WEBHOOK_PORT; this file listens there,
 * subscribes its incoming bucket, uploads through a presigned POST and hands each delivered
 * body to the handler untouched.
 */

let env: MinioEnvironment;
let server: Server;
const deliveries: unknown[] = [];
const waiting: Array<() => void> = [];

beforeAll(async () => {
  const port = Number(process.env.TEST_MINIO_WEBHOOK_PORT);
  const arn = process.env.TEST_MINIO_WEBHOOK_ARN;
  if (!port || !arn) throw new Error('run through `npm test`: it starts MinIO with a webhook target for this test');
  env = await prepareMinioEnvironment();
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (body) deliveries.push(JSON.parse(body));
      res.writeHead(200).end();
      waiting.splice(0).forEach((wake) => wake());
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await env.admin.send(
    new PutBucketNotificationConfigurationCommand({
      Bucket: env.config.incomingBucket,
      NotificationConfiguration: {
        QueueConfigurations: [
          { QueueArn: arn, Events: ['s3:ObjectCreated:*'], Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } } },
        ],
      },
    }),
  );
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await env?.cleanup();
});

async function eventFor(fileId: string, timeoutMs = 20_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = deliveries.find((d) => JSON.stringify(d).includes(fileId));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no MinIO event for ${fileId} within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      waiting.push(resolve);
      setTimeout(resolve, 500);
    });
  }
}

describe('process-upload fed by real MinIO notifications', () => {
  it('processes a presigned POST upload from the event MinIO delivered', async () => {
    const token = await env.token('alice');
    const bytes = wav(150_000);
    const created = await requestUpload(token, { filename: 'a b+c.wav', contentType: 'audio/wav', size: bytes.length });
    expect((await sendUpload(created.json.upload, bytes)).status).toBe(204);
    const event = (await eventFor(created.json.fileId)) as { Records: Array<{ eventName: string; s3: { object: { key: string } } }> };
    expect(event.Records[0]!.eventName).toBe('s3:ObjectCreated:Post');
    expect(event.Records[0]!.s3.object.key).toContain('%2F');

    const result = await (processUpload as (e: unknown, c: unknown) => Promise<{ results: any[] }>)(event, lambdaContext());
    expect(result.results).toEqual([{ outcome: 'ready', fileId: created.json.fileId }]);
    expect((await env.service.getFileInfo('alice', created.json.fileId)).status).toBe('ready');
  });
});
