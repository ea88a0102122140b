import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

vi.hoisted(() => {
  // vitest.config.ts turns metrics off for every file; this one reads what they write.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

import { handler as getFile } from '../../../functions/get-file.ts';
import { handler as getInfo } from '../../../functions/get-file-info.ts';
import { notAudio, wav } from '../../support/audio-fixtures.ts';
import { captureEmf } from '../../support/emf-capture.ts';
import { uploadRecording } from '../../support/file-flow.ts';
import { invoke } from '../../support/handlers.ts';
import { apiEvent } from '../../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

let env: MinioEnvironment;
let token: string;
let emf: ReturnType<typeof captureEmf>;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_RESPONSE_BYTES: '4096' });
  token = await env.token('alice');
});
afterAll(() => env.cleanup());
beforeEach(() => {
  emf = captureEmf();
});
afterEach(() => emf.restore());

const info = (fileId: string, as: string | null = token) => invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token: as ?? undefined }));

describe('metrics through the functions (EMF)', () => {
  it('counts a getFileInfo call as one request of operation getFileInfo, with its latency', async () => {
    const fileId = await uploadRecording(env, token, wav(3000));
    emf.clear();
    const reply = await info(fileId);
    expect(reply.status).toBe(200);
    expect(emf.values('Requests', { operation: 'getFileInfo' })).toEqual([1]);
    expect(emf.values('Latency', { operation: 'getFileInfo' })).toHaveLength(1);
    expect(emf.sum('Requests')).toBe(1);
    expect(emf.sum('Errors', { operation: 'getFileInfo' })).toBe(0);
    for (const line of emf.lines) expect(line.record.service).toBe('transcribo-storage');
  });

  it('counts a 401 once: one request, one error, ErrorsByType UnauthorizedError', async () => {
    const reply = await info('1b2c3d4e-0000-4000-8000-00000000abcd', null);
    expect(reply.status).toBe(401);
    expect(emf.sum('Requests', { operation: 'getFileInfo' })).toBe(1);
    expect(emf.sum('Errors', { operation: 'getFileInfo' })).toBe(1);
    expect(emf.values('ErrorsByType', { operation: 'getFileInfo', errorType: 'UnauthorizedError' })).toEqual([1]);
    expect(emf.sum('Errors')).toBe(1);
    expect(emf.sum('Requests')).toBe(1);
  });

  it('counts an error the service call counted once, not again at the HTTP layer', async () => {
    const reply = await info('1b2c3d4e-0000-4000-8000-00000000abcd');
    expect(reply.status).toBe(404);
    expect(emf.sum('Requests', { operation: 'getFileInfo' })).toBe(1);
    expect(emf.values('ErrorsByType', { operation: 'getFileInfo', errorType: 'StorageFileNotFoundError' })).toEqual([1]);
    expect(emf.sum('Errors')).toBe(1);
  });

  it('counts a whole read too large for one response (413) once, and the bytes a range serves', async () => {
    const fileId = await uploadRecording(env, token, wav(6000));
    emf.clear();
    const whole = await invoke(getFile, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token }));
    expect(whole.status).toBe(413);
    expect(emf.sum('Requests', { operation: 'getFile' })).toBe(1);
    expect(emf.values('ErrorsByType', { operation: 'getFile', errorType: 'StorageFileSizeError' })).toEqual([1]);
    emf.clear();
    const part = await invoke(getFile, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token, headers: { range: 'bytes=0-999' } }));
    expect(part.status).toBe(206);
    expect(emf.values('BytesRead')).toEqual([1000]);
    expect(emf.sum('Errors')).toBe(0);
  });

  it('records a processed upload: S3 latency per command, bytes stored, file size, ready', async () => {
    const bytes = wav(70_000);
    emf.clear();
    await uploadRecording(env, token, bytes);
    expect(emf.values('Requests', { operation: 'processUpload' })).toEqual([1]);
    expect(emf.values('StorageLatency', { command: 'GetObject' }).length).toBeGreaterThan(0);
    const writes = [...emf.values('StorageLatency', { command: 'PutObject' }), ...emf.values('StorageLatency', { command: 'UploadPart' })];
    expect(writes.length).toBeGreaterThan(0);
    expect(emf.values('BytesStored')).toEqual([bytes.length]);
    expect(emf.values('FileSize')).toEqual([bytes.length]);
    expect(emf.values('UploadsReady')).toEqual([1]);
    expect(emf.values('EncryptionOverheadBytes')[0]).toBeGreaterThan(0);
    // A 404 from HeadObject on a missing manifest is an answer, not a storage failure.
    expect(emf.sum('StorageErrors', { command: 'GetObject' })).toBe(0);
  });

  it('records a rejected upload with its reason code', async () => {
    emf.clear();
    const fileId = await uploadRecording(env, token, notAudio(5000));
    expect((await info(fileId)).json.status).toBe('rejected');
    expect(emf.values('UploadsRejected', { reason: 'wrong_format' })).toEqual([1]);
    expect(emf.values('UploadsRejected')).toEqual([1]);
    expect(emf.values('UploadsReady')).toEqual([]);
  });

  it('records an upload with the right first bytes but no consistent audio as invalid_audio', async () => {
    emf.clear();
    const bytes = wav(5000);
    bytes.writeUInt32LE(9000, 4); // the RIFF size of a longer file: a truncated or padded upload
    const fileId = await uploadRecording(env, token, bytes);
    expect((await info(fileId)).json.status).toBe('rejected');
    expect(emf.values('UploadsRejected', { reason: 'invalid_audio' })).toEqual([1]);
  });
});
