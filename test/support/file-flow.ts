import { expect } from 'vitest';
import { handler as createUpload } from '../../functions/create-upload.ts';
import { handler as processUpload } from '../../functions/process-upload.ts';
import { incomingKey } from '../../lib/storage/object-layout.ts';
import { sendUpload } from './http-client.ts';
import { invoke } from './handlers.ts';
import { apiEvent, lambdaContext, s3Event } from './lambda-events.ts';
import type { MinioEnvironment } from './minio-environment.ts';

const CONTENT_TYPES = { wav: 'audio/wav', mp3: 'audio/mpeg', m4a: 'audio/mp4' } as const;

/** Asks for an upload through the create-upload function and returns its reply. */
export async function requestUpload(
  token: string,
  body: Record<string, unknown>,
) {
  return invoke(createUpload, apiEvent({ method: 'POST', path: '/files', token, body: JSON.stringify(body) }));
}

/** Runs the object-created trigger for a file's upload, as MinIO would notify it. */
export async function notifyUploaded(env: MinioEnvironment, fileId: string, flavour: 'aws' | 'minio' = 'minio') {
  return (processUpload as (e: unknown, c: unknown) => Promise<{ results: unknown[] }>)(
    s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour }),
    lambdaContext(),
  );
}

/** The whole client path: create, upload with fetch, trigger processing. Returns the fileId. */
export async function uploadRecording(
  env: MinioEnvironment,
  token: string,
  bytes: Buffer,
  extension: 'wav' | 'mp3' | 'm4a' = 'wav',
  extra: Record<string, unknown> = {},
): Promise<string> {
  const created = await requestUpload(token, {
    filename: `take one.${extension}`,
    contentType: CONTENT_TYPES[extension],
    size: bytes.length,
    ...extra,
  });
  expect(created.status).toBe(201);
  const sent = await sendUpload(created.json.upload, bytes);
  expect(sent.status, await sent.clone().text()).toBeLessThan(300);
  await notifyUploaded(env, created.json.fileId);
  return created.json.fileId as string;
}
