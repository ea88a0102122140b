import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as deleteFile } from '../../functions/delete-file.ts';
import { handler as getContent } from '../../functions/get-file.ts';
import { handler as listDeletedFiles } from '../../functions/list-deleted-files.ts';
import { handler as restoreFile } from '../../functions/restore-file.ts';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/** DELETE (and ?purge=true), GET /deleted-files and POST /files/{id}/restore as a client calls them. */

let env: MinioEnvironment;
let alice: string;
let bob: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  [alice, bob] = await Promise.all([env.token('alice'), env.token('bob')]);
});
afterAll(() => env.cleanup());

const remove = (fileId: string, token: string, query = '') =>
  invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${fileId}${query}`, fileId, token }));
const restore = (fileId: string, token: string) =>
  invoke(restoreFile, apiEvent({ method: 'POST', path: `/files/${fileId}/restore`, fileId, token }));
const deletedOf = (token: string) => invoke(listDeletedFiles, apiEvent({ method: 'GET', path: '/deleted-files', token }));
const content = (fileId: string, token: string) =>
  invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token, headers: { range: 'bytes=0-' } }));

describe('deleted files over HTTP', () => {
  it('delete → listed for its owner → restored ready and identical; 404 for anyone else', async () => {
    const bytes = wav(1_500_000);
    const fileId = await uploadRecording(env, alice, bytes);
    expect((await remove(fileId, alice)).status).toBe(204);
    expect((await remove(fileId, alice)).status).toBe(404);

    const listed = await deletedOf(alice);
    expect(listed.status).toBe(200);
    expect(listed.json.files).toEqual([expect.objectContaining({ fileId, size: bytes.length, sha256: sha256(bytes), deletedAt: expect.any(String), restorableUntil: expect.any(String) })]);
    expect((await deletedOf(bob)).json).toEqual({ files: [] });

    const refused = await restore(fileId, bob);
    expect(refused.status).toBe(404);
    expect(refused.json.error).toMatchObject({ type: 'StorageFileNotFoundError', operation: 'restoreFile', fileId });
    expect((await remove(fileId, bob, '?purge=true')).status).toBe(404);

    const restored = await restore(fileId, alice);
    expect(restored.status).toBe(200);
    expect(restored.json).toMatchObject({ fileId, status: 'ready', sha256: sha256(bytes) });
    const read = await content(fileId, alice);
    expect(read.status).toBe(206);
    expect(read.bytes.equals(bytes.subarray(0, read.bytes.length))).toBe(true);
    expect((await deletedOf(alice)).json.files).toEqual([]);
    // A client whose answer was lost restores again: the same 200.
    expect((await restore(fileId, alice)).json).toMatchObject({ fileId, status: 'ready' });
  });

  it('?purge=true removes a live file and one already deleted for good; a bad purge value is a 400', async () => {
    const fileId = await uploadRecording(env, alice, wav(40_000));
    const bad = await remove(fileId, alice, '?purge=yes');
    expect(bad.status).toBe(400);
    expect(bad.json.error.type).toBe('ValidationError');
    expect((await remove(fileId, alice, '?purge=true')).status).toBe(204);
    expect((await deletedOf(alice)).json.files).toEqual([]);
    expect((await restore(fileId, alice)).status).toBe(404);

    const other = await uploadRecording(env, alice, wav(41_000));
    expect((await remove(other, alice)).status).toBe(204);
    expect((await remove(other, alice, '?purge=true')).status).toBe(204);
    expect((await restore(other, alice)).status).toBe(404);
    expect(await env.keys(env.config.bucket).then((keys) => keys.filter((k) => k.includes(other) && !k.startsWith('usage/')))).toEqual([]);
  });

  it('a malformed id is a 400, never a key', async () => {
    const reply = await restore('..%2Fmanifests', alice);
    expect(reply.status).toBe(400);
    expect(reply.json.error.type).toBe('ValidationError');
  });
});
