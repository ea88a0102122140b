import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as createLink } from '../../functions/create-playback-link.ts';
import { handler as deleteFile } from '../../functions/delete-file.ts';
import { handler as getContent } from '../../functions/get-file.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { wav } from '../support/audio-fixtures.ts';
import { requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

let env: MinioEnvironment;
let alice: string;
let bytes: Buffer;
let fileId: string;
let otherId: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_RESPONSE_BYTES: String(256 * 1024), STORAGE_PLAYBACK_LINK_TTL_SECONDS: '600' });
  alice = await env.token('alice');
  bytes = wav(600_000);
  [fileId, otherId] = await Promise.all([uploadRecording(env, alice, bytes), uploadRecording(env, alice, wav(70_000))]);
});
afterAll(() => env.cleanup());

const mint = (id: string, body?: unknown, as: string | null = alice) =>
  invoke(createLink, apiEvent({ method: 'POST', path: `/files/${id}/links`, fileId: id, token: as ?? undefined, ...(body !== undefined && { body: JSON.stringify(body) }) }));

/** Follows a link as a media element does: no Authorization header, only the URL. */
const follow = (url: string, headers: Record<string, string> = {}, fileIdInPath?: string) => {
  const { pathname, search } = new URL(url);
  const id = fileIdInPath ?? pathname.split('/')[2]!;
  return invoke(getContent, apiEvent({ method: 'GET', path: `${pathname.replace(pathname.split('/')[2]!, id)}${search}`, fileId: id, headers }));
};

describe('POST /files/{fileId}/links and following a link', () => {
  it('gives a link on the address the caller used, which serves ranges with no header', async () => {
    const before = Date.now();
    const reply = await mint(fileId);
    expect(reply.status).toBe(201);
    const { url, expiresAt } = reply.json;
    expect(url).toMatch(new RegExp(`^http://localhost:3000/files/${fileId}/content\\?token=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`));
    expect(Date.parse(expiresAt) - before).toBeGreaterThan(599_000);
    expect(Date.parse(expiresAt) - before).toBeLessThan(602_000);

    const first = await follow(url, { range: 'bytes=0-' });
    expect(first.status).toBe(206);
    expect(first.headers['content-range']).toBe(`bytes 0-${256 * 1024 - 1}/${bytes.length}`);
    expect(first.bytes.equals(bytes.subarray(0, 256 * 1024))).toBe(true);
    const middle = await follow(url, { range: 'bytes=300000-300099' });
    expect(middle.bytes.equals(bytes.subarray(300000, 300100))).toBe(true);
  });

  it('makes only http or https links, whatever X-Forwarded-Proto says', async () => {
    const reply = await invoke(createLink, apiEvent({ method: 'POST', path: `/files/${fileId}/links`, fileId, token: alice, headers: { 'x-forwarded-proto': 'javascript' } }));
    expect(reply.json.url).toMatch(/^https:\/\/localhost:3000\//);
  });

  it('takes a shorter life when asked, and refuses a longer one than configured', async () => {
    const short = await mint(fileId, { expiresIn: 60 });
    expect(Date.parse(short.json.expiresAt) - Date.now()).toBeLessThan(61_000);
    const long = await mint(fileId, { expiresIn: 601 });
    expect(long.status).toBe(400);
    expect(long.json.error.type).toBe('ValidationError');
    const junk = await mint(fileId, { expiresIn: 60, owner: 'bob' });
    expect(junk.status).toBe(400);
  });

  it('refuses an expired link', async () => {
    const { url } = (await mint(fileId, { expiresIn: 1 })).json;
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const reply = await follow(url, { range: 'bytes=0-9' });
    expect(reply.status).toBe(401);
    expect(reply.json.error.type).toBe('UnauthorizedError');
    expect(reply.json.error.message).toMatch(/expired/);
  });

  it('refuses a tampered link, another file\'s link, and a bearer token passed as a link', async () => {
    const { url } = (await mint(fileId)).json;
    const token = new URL(url).searchParams.get('token')!;
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const flipped = `${signature.slice(0, 5)}${signature[5] === 'A' ? 'B' : 'A'}${signature.slice(6)}`;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const otherClaims = Buffer.from(JSON.stringify({ ...claims, fid: otherId })).toString('base64url');
    for (const [forged, id] of [
      [`${header}.${payload}.${flipped}`, fileId],
      [`${header}.${otherClaims}.${signature}`, otherId],
      [token, otherId],
      [alice, fileId],
    ] as const) {
      const reply = await follow(`http://localhost:3000/files/${id}/content?token=${forged}`, { range: 'bytes=0-9' }, id);
      expect(reply.status).toBe(401);
      expect(reply.json.error.type).toBe('UnauthorizedError');
      expect(reply.bytes.includes(bytes.subarray(0, 10))).toBe(false);
    }
  });

  it('is no bearer token: a link opens its one file and no other route', async () => {
    const { url } = (await mint(fileId)).json;
    const token = new URL(url).searchParams.get('token')!;
    const info = await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }));
    expect(info.status).toBe(401);
    const withQuery = await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}?token=${token}`, fileId }));
    expect(withQuery.status).toBe(401);
  });

  it('answers 409 for a file not ready, 404 for another owner, and dies with the file', async () => {
    const pending = await requestUpload(alice, { filename: 'later.wav', contentType: 'audio/wav', size: 100 });
    expect((await mint(pending.json.fileId)).status).toBe(409);
    expect((await mint(fileId, undefined, await env.token('mallory'))).status).toBe(404);
    expect((await mint(fileId, undefined, null)).status).toBe(401);

    const doomedId = await uploadRecording(env, alice, wav(10_000));
    const { url } = (await mint(doomedId)).json;
    expect((await follow(url, { range: 'bytes=0-9' })).status).toBe(206);
    await invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${doomedId}`, fileId: doomedId, token: alice }));
    const after = await follow(url, { range: 'bytes=0-9' });
    expect(after.status).toBe(404);
  });
});
