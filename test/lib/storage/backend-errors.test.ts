import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { StorageAuthenticationError, StorageConnectionError } from '../../../lib/errors/catalogue.ts';
import { renderError } from '../../../lib/http/error-response.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { getFreePort } from '../../../scripts/shared/ports.ts';
import { minioConnection, newKek } from '../../support/minio-environment.ts';

const base = () => {
  const m = minioConnection();
  return {
    STORAGE_ENDPOINT: m.endpoint,
    STORAGE_PORT: m.port,
    STORAGE_SECURE: 'false',
    STORAGE_ACCESS_KEY: m.accessKey,
    STORAGE_SECRET_KEY: m.secretKey,
    STORAGE_ENCRYPTION_KEYS: `k:${newKek()}`,
    STORAGE_AUTH_JWT_SECRET: 's'.repeat(32),
  };
};

const upload = { filename: 'a.wav', contentType: 'audio/wav', size: 100 };

describe('backend failures against a real MinIO', () => {
  it('refused credentials become StorageAuthenticationError (5xx) without the backend text', async () => {
    for (const wrong of [{ STORAGE_SECRET_KEY: 'wrong-secret-0000' }, { STORAGE_ACCESS_KEY: 'nobody-at-all' }]) {
      const service = new StorageService(createStorageContext(parseConfig({ ...base(), ...wrong })));
      const error = await service.createUpload('alice', upload).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageAuthenticationError);
      const rendered = renderError(error as StorageAuthenticationError, 'req-1');
      expect(rendered.statusCode).toBe(502);
      const body = String(rendered.body);
      expect(body).not.toMatch(/signature|access key|SignatureDoesNotMatch|InvalidAccessKeyId|wrong-secret|nobody/i);
      expect(JSON.parse(body).error.type).toBe('StorageAuthenticationError');
    }
  });

  it('an unreachable server becomes StorageConnectionError (503)', async () => {
    const service = new StorageService(createStorageContext(parseConfig({ ...base(), STORAGE_PORT: String(await getFreePort()) })));
    const error = await service.getFileInfo('alice', '1b2c3d4e-0000-4000-8000-00000000abcd').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConnectionError);
    expect(renderError(error as StorageConnectionError, 'r').statusCode).toBe(503);
  });
});
