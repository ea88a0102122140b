import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config.ts';

const kek = randomBytes(32).toString('base64');
const minimal = { STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_KEYS: `k1:${kek}` };

describe('parseConfig', () => {
  it('has sane defaults', () => {
    const config = parseConfig(minimal);
    expect(config).toMatchObject({
      endpoint: undefined,
      region: 'us-east-1',
      maxFileSize: 256 * 1024 * 1024,
      allowedExtensions: ['mp3', 'wav', 'm4a'],
      encryption: { enabled: true, activeKeyId: 'k1' },
      processing: { maxAttempts: 3, leaseSeconds: 30 },
      sweep: { intervalSeconds: 60, uploadGraceSeconds: 3600 },
      deadLetterQueueUrl: undefined,
    });
    expect(config.bucket).not.toBe(config.incomingBucket);
  });

  it('builds endpoints from host, port and secure, and signs for the public endpoint', () => {
    const config = parseConfig({
      ...minimal,
      STORAGE_ENDPOINT: 'minio',
      STORAGE_PORT: '9000',
      STORAGE_SECURE: 'false',
      STORAGE_PUBLIC_ENDPOINT: 'http://localhost:9000/',
    });
    expect(config.endpoint).toBe('http://minio:9000');
    expect(config.publicEndpoint).toBe('http://localhost:9000');
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: 's3.example.com' }).endpoint).toBe('https://s3.example.com');
  });

  it.each([
    [{ STORAGE_AUTH_JWT_SECRET: 'short' }, 'STORAGE_AUTH_JWT_SECRET'],
    [{ STORAGE_PORT: 'ninety' }, 'STORAGE_PORT'],
    [{ STORAGE_SECURE: 'maybe' }, 'STORAGE_SECURE'],
    [{ STORAGE_MAX_FILE_SIZE: '-1' }, 'STORAGE_MAX_FILE_SIZE'],
    [{ STORAGE_ALLOWED_EXTENSIONS: 'mp3,exe' }, 'STORAGE_ALLOWED_EXTENSIONS'],
    [{ STORAGE_BUCKET: 'Bad_Bucket' }, 'STORAGE_BUCKET'],
    [{ STORAGE_INCOMING_BUCKET: 'transcribo-files' }, 'STORAGE_INCOMING_BUCKET'],
    [{ STORAGE_ACCESS_KEY: 'only-half' }, 'STORAGE_SECRET_KEY'],
    [{ STORAGE_ENCRYPTION_KEYS: undefined }, 'STORAGE_ENCRYPTION_KEYS'],
    [{ STORAGE_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, 'STORAGE_ENCRYPTION_KEYS'],
    [{ STORAGE_ENCRYPTION_ACTIVE_KEY_ID: 'k9' }, 'STORAGE_ENCRYPTION_ACTIVE_KEY_ID'],
    [{ STORAGE_PUBLIC_ENDPOINT: 'localhost' }, 'STORAGE_PUBLIC_ENDPOINT'],
    [{ STORAGE_PROCESSING_LEASE_SECONDS: '1' }, 'STORAGE_PROCESSING_LEASE_SECONDS'],
    [{ STORAGE_SWEEP_INTERVAL_SECONDS: '0' }, 'STORAGE_SWEEP_INTERVAL_SECONDS'],
    [{ STORAGE_UPLOAD_GRACE_SECONDS: '-5' }, 'STORAGE_UPLOAD_GRACE_SECONDS'],
    [{ STORAGE_DEAD_LETTER_QUEUE_URL: 'my-queue' }, 'STORAGE_DEAD_LETTER_QUEUE_URL'],
  ])('stops on %o naming %s, without echoing secrets', (override, name) => {
    const attempt = () => parseConfig({ ...minimal, ...override });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(name);
    try {
      attempt();
    } catch (error) {
      expect((error as Error).message).not.toContain(kek);
      expect((error as Error).message).not.toContain('x'.repeat(32));
    }
  });

  it('accepts encryption off without keys', () => {
    expect(parseConfig({ STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_ENABLED: 'false' }).encryption).toEqual({
      enabled: false,
    });
  });
});
