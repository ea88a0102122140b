import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { ValidationError } from '../../lib/errors/catalogue.ts';
import { finalKey, incomingKey } from '../../lib/storage/object-layout.ts';
import { fixture, m4a, mp3, sha256 } from '../support/audio-fixtures.ts';
import { notifyUploaded, requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { hostileFiles } from '../support/hostile-audio.ts';
import { sendUpload } from '../support/http-client.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * Issue 10, point 3, end to end on a real MinIO: a presigned upload, the object-created trigger
 * (process-upload), then GET /files/{id}. Real recordings end `ready` with what a transcription
 * product needs to schedule them; the hostile ones end `rejected`, with a reason, and leave
 * nothing stored.
 */

let env: MinioEnvironment;
let token: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token('alice');
});
afterAll(() => env.cleanup());

const info = async (fileId: string) => (await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }))).json;
const CONTENT_TYPES = { wav: 'audio/wav', mp3: 'audio/mpeg', m4a: 'audio/mp4' } as const;

describe('real recordings end ready, described', () => {
  it.each([
    ['mono-16k.wav', { durationSeconds: 2, codec: 'PCM', sampleRate: 16000, channels: 1, bitrate: 256000 }],
    ['stereo-44k.wav', { durationSeconds: 1, codec: 'PCM', sampleRate: 44100, channels: 2, bitrate: 1411200 }],
    ['cbr-128k.mp3', { durationSeconds: 3.03, codec: 'MPEG 1 Layer 3', sampleRate: 44100, channels: 2, bitrate: 127999 }],
    ['vbr-mono.mp3', { durationSeconds: 3.056, codec: 'MPEG 2 Layer 3', sampleRate: 22050, channels: 1, bitrate: 12661 }],
    ['aac-mono.m4a', { durationSeconds: 3.023, codec: 'MPEG-4/AAC', sampleRate: 44100, channels: 1, bitrate: 65739 }],
  ] as const)('%s', async (name, audio) => {
    const bytes = fixture(name);
    const fileId = await uploadRecording(env, token, bytes, name.slice(-3) as 'wav' | 'mp3' | 'm4a');
    const described = await info(fileId);
    expect(described).toMatchObject({ fileId, status: 'ready', size: bytes.length, sha256: sha256(bytes), audio });
    expect(Object.keys(described.audio).sort()).toEqual(['bitrate', 'channels', 'codec', 'durationSeconds', 'sampleRate']);
    // The library says the same.
    expect((await env.service.getFileInfo('alice', fileId)).audio).toEqual(audio);
  });

  it('a large generated MP3 and M4A (frames and access units of the fixtures) too', async () => {
    for (const [extension, bytes] of [['mp3', mp3(6_000_000)], ['m4a', m4a(3_000_000)]] as const) {
      const fileId = await uploadRecording(env, token, bytes, extension);
      const described = await info(fileId);
      expect(described.status).toBe('ready');
      expect(described.audio.durationSeconds).toBeGreaterThan(extension === 'mp3' ? 370 : 340);
    }
  });
});

describe('hostile files end rejected, with a reason, and leave nothing stored', () => {
  it.each(hostileFiles().map((h) => [h.name, h] as const))('%s', async (_name, hostile) => {
    const created = await requestUpload(token, { filename: `x.${hostile.extension}`, contentType: CONTENT_TYPES[hostile.extension], size: hostile.bytes.length });
    expect(created.status).toBe(201);
    const fileId = created.json.fileId as string;
    expect((await sendUpload(created.json.upload, hostile.bytes)).status).toBeLessThan(300);
    const result = await notifyUploaded(env, fileId);
    expect(result.results[0]).toMatchObject({ outcome: 'rejected', fileId });
    const described = await info(fileId);
    expect(described.status).toBe('rejected');
    expect(described.reason).toMatch(new RegExp(`^content is not a valid ${hostile.extension} recording: `));
    expect(described.reason).toMatch(hostile.reason);
    expect(described.audio).toBeUndefined();
    expect(await env.keys(env.config.bucket)).not.toContain(finalKey(fileId));
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(fileId));
  });

  it('storeFile (the library path) refuses them the same way, and keeps nothing', async () => {
    const before = await env.keys(env.config.bucket);
    for (const hostile of hostileFiles().slice(0, 4)) {
      const stored = env.service.storeFile('backend-user', hostile.bytes, {
        filename: `x.${hostile.extension}`,
        contentType: CONTENT_TYPES[hostile.extension],
        size: hostile.bytes.length,
      });
      await expect(stored).rejects.toBeInstanceOf(ValidationError);
      await expect(stored).rejects.toThrow(hostile.reason);
    }
    expect(await env.keys(env.config.bucket)).toEqual(before);
    const real = await env.service.storeFile('backend-user', fixture('aac-mono.m4a'), { filename: 'memo.m4a', contentType: 'audio/mp4', size: fixture('aac-mono.m4a').length });
    expect(real.audio).toEqual({ durationSeconds: 3.023, codec: 'MPEG-4/AAC', sampleRate: 44100, channels: 1, bitrate: 65739 });
  });
});
