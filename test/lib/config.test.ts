import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, requireSecrets, settingDocs } from '../../lib/config.ts';
import { GUIDE_ENV } from '../support/guide-env.ts';

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
    [{ STORAGE_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, 'STORAGE_ENCRYPTION_KEYS'],
    [{ STORAGE_ENCRYPTION_ACTIVE_KEY_ID: 'k9' }, 'STORAGE_ENCRYPTION_ACTIVE_KEY_ID'],
    [{ STORAGE_PUBLIC_ENDPOINT: 'localhost' }, 'STORAGE_PUBLIC_ENDPOINT'],
    [{ STORAGE_PROCESSING_LEASE_SECONDS: '1' }, 'STORAGE_PROCESSING_LEASE_SECONDS'],
    [{ STORAGE_SWEEP_INTERVAL_SECONDS: '0' }, 'STORAGE_SWEEP_INTERVAL_SECONDS'],
    [{ STORAGE_UPLOAD_GRACE_SECONDS: '-5' }, 'STORAGE_UPLOAD_GRACE_SECONDS'],
    [{ STORAGE_DEAD_LETTER_QUEUE_URL: 'my-queue' }, 'STORAGE_DEAD_LETTER_QUEUE_URL'],
    [{ STORAGE_BUCKET: 'a'.repeat(60) }, 'STORAGE_INCOMING_BUCKET'],
    [{ STORAGE_ENDPOINT: 'http://[bad' }, 'STORAGE_ENDPOINT'],
    [{ STORAGE_ENCRYPTION_KEYS_PARAMETER: 'not a name' }, 'STORAGE_ENCRYPTION_KEYS_PARAMETER'],
    [{ STORAGE_AUTH_JWKS_URL: 'ftp://idp.example.com/jwks' }, 'STORAGE_AUTH_JWKS_URL'],
    [{ STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS: '0' }, 'STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS'],
    [{ STORAGE_QUOTA_BYTES_PER_OWNER: '-1' }, 'STORAGE_QUOTA_BYTES_PER_OWNER'],
    [{ STORAGE_QUOTA_FILES_PER_OWNER: '2.5' }, 'STORAGE_QUOTA_FILES_PER_OWNER'],
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

  it('has no per-owner quota unless one is set; 0 means none', () => {
    expect(parseConfig(minimal).quotas).toEqual({ bytesPerOwner: undefined, filesPerOwner: undefined });
    expect(parseConfig({ ...minimal, STORAGE_QUOTA_BYTES_PER_OWNER: '0', STORAGE_QUOTA_FILES_PER_OWNER: '' }).quotas).toEqual({ bytesPerOwner: undefined, filesPerOwner: undefined });
    expect(parseConfig({ ...minimal, STORAGE_QUOTA_BYTES_PER_OWNER: '1073741824', STORAGE_QUOTA_FILES_PER_OWNER: '500' }).quotas).toEqual({ bytesPerOwner: 1073741824, filesPerOwner: 500 });
  });

  it('accepts encryption off without keys', () => {
    expect(parseConfig({ STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_ENABLED: 'false' }).encryption).toEqual({
      enabled: false,
    });
  });

  it("reads the storage guide's minimal .env: host:port endpoint over http on loopback, dotted extensions, an incoming bucket named after the final one", () => {
    const config = parseConfig(GUIDE_ENV);
    expect(config.endpoint).toBe('http://localhost:9000');
    expect(config.allowedExtensions).toEqual(['mp3', 'wav', 'm4a']);
    expect(config.bucket).toBe('audio-files');
    expect(config.incomingBucket).toBe('audio-files-incoming');
    expect(config.maxFileSize).toBe(104857600);
    // No secret in it: only what uses one asks for it, naming the variable.
    expect(() => requireSecrets(config, ['encryptionKeys'])).toThrow(/STORAGE_ENCRYPTION_KEYS: is required/);
    expect(() => requireSecrets(config, ['jwtSecret'])).toThrow(/STORAGE_AUTH_JWT_SECRET: is required/);
    expect(() => requireSecrets(parseConfig(minimal), ['jwtSecret', 'encryptionKeys'])).not.toThrow();
  });

  it('is https to a remote endpoint unless told otherwise, and STORAGE_PORT wins over a written port', () => {
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: 'minio.internal:9000' }).endpoint).toBe('https://minio.internal:9000');
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: '127.0.0.1', STORAGE_PORT: '9100' }).endpoint).toBe('http://127.0.0.1:9100');
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: 'localhost:9000', STORAGE_SECURE: 'true' }).endpoint).toBe('https://localhost:9000');
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: 'localhost:9000', STORAGE_PORT: '9100' }).endpoint).toBe('http://localhost:9100');
    expect(parseConfig({ ...minimal, STORAGE_ENDPOINT: 'http://minio:9000' }).endpoint).toBe('http://minio:9000');
  });

  it('declares every setting with what it is for and how a deployment gets it', () => {
    for (const setting of settingDocs()) {
      expect(setting.doc.length, setting.name).toBeGreaterThan(10);
      expect(setting.defaultValue !== undefined || setting.defaultDoc !== undefined, setting.name).toBe(true);
    }
    const secrets = settingDocs().filter((s) => s.deployed === 'secret').map((s) => s.name);
    expect(secrets.sort()).toEqual(['STORAGE_AUTH_JWT_SECRET', 'STORAGE_ENCRYPTION_KEYS']);
  });
});
