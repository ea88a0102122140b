import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as deleteFile } from '../../functions/delete-file.ts';
import { handler as getContent } from '../../functions/get-file.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { handler as getSize } from '../../functions/get-file-size.ts';
import { wav } from '../support/audio-fixtures.ts';
import { notifyUploaded, requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { sendUpload } from '../support/http-client.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { sweep } from '../../lib/processing/sweep.ts';
import { pendingKey } from '../../lib/storage/object-layout.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

let env: MinioEnvironment;
let token: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token('alice');
});
afterAll(() => env.cleanup());

const remove = (fileId: string, as = token) =>
  invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${fileId}`, fileId, token: as }));
const everyCall = (fileId: string) =>
  Promise.all([
    remove(fileId),
    invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token })),
    invoke(getSize, apiEvent({ method: 'GET', path: `/files/${fileId}/size`, fileId, token })),
    invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token })),
  ]);

describe('DELETE /files/{fileId}', () => {
  it('removes every trace; afterwards every call answers 404', async () => {
    const fileId = await uploadRecording(env, token, wav(70_000));
    const reply = await remove(fileId);
    expect(reply.status).toBe(204);
    expect(reply.bytes.length).toBe(0);
    const everything = [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))];
    // Only its usage changes (added, removed) remain, until the sweep folds them (test/lib/storage/usage-ledger.test.ts),
    // and the entry that keeps it restorable for the recovery window (test/functions/restore-file.test.ts).
    expect(everything.filter((k) => k.includes(fileId) && !k.startsWith('usage/changes/') && !k.startsWith('deleted/'))).toEqual([]);
    expect(everything.filter((k) => k.startsWith('deleted/') && k.endsWith(`/${fileId}`))).toHaveLength(1);
    expect(everything.filter((k) => k.startsWith('usage/changes/') && k.includes(fileId))).toEqual([`usage/changes/${fileId}.add`, `usage/changes/${fileId}.remove`]);
    for (const after of await everyCall(fileId)) {
      expect(after.status).toBe(404);
      expect(after.json.error.type).toBe('StorageFileNotFoundError');
    }
  });

  it('deletes a file whose upload is pending, and a late event for it leaves nothing behind', async () => {
    const bytes = wav(1000);
    const created = await requestUpload(token, { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length });
    const fileId = created.json.fileId;
    expect((await remove(fileId)).status).toBe(204);
    // The client still holds a valid presigned upload and uses it after the delete.
    expect((await sendUpload(created.json.upload, bytes)).status).toBe(204);
    await notifyUploaded(env, fileId);
    const traces = async () =>
      [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))].filter((k) => k.includes(fileId));
    // Only the sweep's marker stays, until no run that might have claimed the file can still write.
    expect(await traces()).toEqual([pendingKey(fileId)]);
    await sweep(env.ctx, { now: Date.now() + 3 * env.config.processing.leaseSeconds * 1000 });
    expect(await traces()).toEqual([]);
  });

  it('cannot delete another owner\'s file', async () => {
    const fileId = await uploadRecording(env, token, wav(100));
    const reply = await remove(fileId, await env.token('mallory'));
    expect(reply.status).toBe(404);
    const still = await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }));
    expect(still.json.status).toBe('ready');
  });
});
