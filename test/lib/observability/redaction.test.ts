import { Logger } from '@aws-lambda-powertools/logger';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { REDACTED, redactingReplacer, redactString } from '../../../lib/observability/redaction.ts';

describe('log redaction', () => {
  afterEach(() => vi.restoreAllMocks());

  it('strips presigned signatures and bearer tokens from strings', () => {
    const url = 'http://localhost:9000/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abcdef0123&X-Amz-Expires=900';
    const clean = redactString(url);
    expect(clean).not.toContain('abcdef0123');
    expect(clean).not.toContain('AKIA');
    expect(clean).toContain('X-Amz-Expires=900');
    expect(redactString('Authorization: Bearer eyJ.abc.def')).toBe(`Authorization: Bearer ${REDACTED}`);
  });

  it('strips bearer tokens whatever the case of the scheme, as the token check accepts them', () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const clean = redactString(`authorization: ${scheme} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl`);
      expect(clean).toBe(`authorization: ${scheme} ${REDACTED}`);
    }
  });

  it('strips the credential and signature of a SigV4 Authorization header, which has no query string', () => {
    const header =
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261124/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024';
    const clean = redactString(header);
    expect(clean).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(clean).not.toContain('fe5f80f77d5fa3be');
    expect(clean).toBe(`AWS4-HMAC-SHA256 Credential=${REDACTED}, SignedHeaders=host;x-amz-date, Signature=${REDACTED}`);
  });

  it('redacts a field named authorization, whatever its value looks like, as any secret-named field', () => {
    for (const name of ['authorization', 'Authorization', 'x-amz-security-token', 'X-Amz-Signature', 'apiToken']) {
      expect(redactingReplacer(name, 'opaque-value-without-a-scheme')).toBe(REDACTED);
    }
    expect(redactingReplacer('fileId', 'opaque-value-without-a-scheme')).toBe('opaque-value-without-a-scheme');
  });

  it("strips a playback link's token, wherever the link appears", () => {
    const link = 'http://127.0.0.1:3000/files/0b8a3c1e-0000-4000-8000-00000000beef/content?token=eyJhbGciOiJIUzI1NiJ9.eyJmaWQiOiJ4In0.c2lnbmF0dXJl';
    const clean = redactString(`following ${link} for the player`);
    expect(clean).not.toContain('c2lnbmF0dXJl');
    expect(clean).not.toContain('eyJmaWQiOiJ4In0');
    expect(clean).toContain(`/content?token=${REDACTED} for the player`);
  });

  it('drops secret-named fields and file bytes from what a real Powertools logger prints', () => {
    const lines: string[] = [];
    const logger = new Logger({ serviceName: 't', jsonReplacerFn: redactingReplacer, logLevel: 'DEBUG' });
    vi.spyOn(console, 'info').mockImplementation((line: string) => void lines.push(line));
    vi.spyOn(process.stdout, 'write').mockImplementation((line: string | Uint8Array) => (lines.push(String(line)), true));
    logger.info('upload', {
      secretKey: 'sk-123',
      STORAGE_AUTH_JWT_SECRET: 'jwt-secret-value',
      wrappedKey: 'wk-abc',
      password: 'pw',
      body: Buffer.from('RIFF-audio-bytes'),
      url: 'http://x/?X-Amz-Signature=deadbeef',
      fileId: 'keep-me',
    });
    const out = lines.join('\n');
    expect(out).toContain('keep-me');
    expect(out).toContain('"body":"[16 bytes]"');
    for (const secret of ['sk-123', 'jwt-secret-value', 'wk-abc', '"pw"', 'RIFF-audio-bytes', 'deadbeef']) {
      expect(out).not.toContain(secret);
    }
    expect(redactingReplacer('x', new Uint8Array(3))).toBe('[3 bytes]');
  });
});

/** What the logger prints for these fields: the replacer applied as JSON.stringify applies it, key by key. */
const logged = (fields: Record<string, unknown>) => JSON.parse(JSON.stringify(fields, redactingReplacer)) as Record<string, unknown>;

describe('log redaction: which field names are secret', () => {
  it('redacts every kind of secret-named field, whatever the case and separator', () => {
    const secrets = {
      clientSecret: 's1',
      DB_PASSWORD: 's2',
      sessionToken: 's3',
      Authorization: 's4',
      'x-amz-signature': 's5',
      credentials: 's6',
      wrappedKey: 's7',
      wrapped_key: 's8',
      dataKey: 's9',
      data_key: 's10',
      'X-Amz-Security-Token': 's11',
      policy: 's12',
      key: 's13',
      keys: 's14',
      KEY: 's15',
    };
    const out = logged(secrets);
    for (const name of Object.keys(secrets)) expect(out[name], name).toBe('[redacted]');
  });

  it('keeps fields that only mention a key: object keys, key ids and counts are what a reader needs', () => {
    // Only a field named exactly `key` or `keys` holds key material; `objectKey` is a path, `keyId` names a key.
    const plain = { objectKey: 'uploads/a.wav', keyId: 'k-2026-01', keysLoaded: 2, objectKeys: 3, ownerTagKeyRewrapped: true, fileId: 'f-1' };
    expect(logged(plain)).toEqual(plain);
  });

  it('marks a redacted value visibly, so a reader knows a value was there', () => {
    expect(JSON.stringify({ password: 'hunter2' }, redactingReplacer)).toBe('{"password":"[redacted]"}');
    expect(REDACTED).toBe('[redacted]');
  });

  it('leaves an absent or null secret as it is: a missing field stays missing, a null says "not set"', () => {
    expect(JSON.stringify({ password: undefined, token: null, fileId: 'f' }, redactingReplacer)).toBe('{"token":null,"fileId":"f"}');
  });

  it('walks into a secret-named object instead of hiding it whole: its secret fields go, the rest stays', () => {
    const out = JSON.stringify({ keys: [{ id: 'k1', wrappedKey: 'wk-1' }], credentials: { region: 'eu-west-1', accessKeyId: 'AKIA-ID', secretAccessKey: 'sak' } }, redactingReplacer);
    expect(JSON.parse(out)).toEqual({
      keys: [{ id: 'k1', wrappedKey: REDACTED }],
      // An access key id is half a credential: it goes too.
      credentials: { region: 'eu-west-1', accessKeyId: REDACTED, secretAccessKey: REDACTED },
    });
  });
});

describe('log redaction: secrets inside ordinary strings', () => {
  it('strips a bearer token however many spaces follow the scheme', () => {
    expect(redactString('Bearer   eyJ.abc.def')).toBe(`Bearer ${REDACTED}`);
    expect(redactString('Bearer\teyJ.abc.def')).toBe(`Bearer ${REDACTED}`);
  });

  it('keeps ordinary text untouched', () => {
    const text = 'upload stored: 3 parts, key uploads/a b.wav, Bearer-less; SignedHeaders=host?X-Amz-Expires=900&partNumber=2';
    expect(redactString(text)).toBe(text);
  });

  it('scrubs strings at any depth of a logged object, and the whole value when it is a string', () => {
    expect(JSON.parse(JSON.stringify({ error: { message: 'GET http://x/?token=abc failed' } }, redactingReplacer))).toEqual({
      error: { message: `GET http://x/?token=${REDACTED} failed` },
    });
    expect(JSON.stringify('Bearer abc', redactingReplacer)).toBe(`"Bearer ${REDACTED}"`);
  });
});

describe('log redaction: values that are not text', () => {
  it('prints file bytes as their count, whether a Uint8Array or a serialised Buffer', () => {
    // Buffer.toJSON runs before the replacer: it sees { type: 'Buffer', data: [...] }.
    expect(JSON.stringify({ body: Buffer.from('RIFF-audio'), head: new Uint8Array(12) }, redactingReplacer)).toBe('{"body":"[10 bytes]","head":"[12 bytes]"}');
  });

  it('prints objects that only look a little like a Buffer as they are', () => {
    const notBytes = { list: { data: [1, 2, 3] }, typed: { type: 'Buffer', data: 'not an array' }, other: { type: 'audio/wav', data: [1] } };
    expect(logged(notBytes)).toEqual(notBytes);
  });

  it('serialises bigints as decimal strings instead of throwing', () => {
    expect(JSON.stringify({ size: 12345678901234567890n }, redactingReplacer)).toBe('{"size":"12345678901234567890"}');
  });

  it('passes numbers, booleans and null through', () => {
    const plain = { size: 3, ok: false, parent: null, nested: [1, 'a', null] };
    expect(logged(plain)).toEqual(plain);
  });

  it('redacts fields whose name says they hold a key, a cookie or a token, and keeps those that only mention a key', () => {
    for (const name of ['apiKey', 'x-api-key', 'privateKey', 'private_key', 'accessKey', 'encryptionKey', 'hmacKey', 'signingKey', 'passphrase', 'cookie', 'Set-Cookie', 'jwt', 'idJwt']) {
      expect(redactingReplacer(name, 'opaque-value'), name).toBe(REDACTED);
    }
    for (const name of ['objectKey', 'keyId', 'kekId', 'fileId', 'storageKeyPrefix']) expect(redactingReplacer(name, 'kept'), name).toBe('kept');
  });

  it('strips Basic credentials and lowercase SigV4 fields from free text', () => {
    expect(redactString('authorization: Basic dXNlcjpwYXNz')).toBe(`authorization: Basic ${REDACTED}`);
    expect(redactString('aws4-hmac-sha256 credential=AKIAEXAMPLE/x, signature=abcdef')).toBe(`aws4-hmac-sha256 credential=${REDACTED}, signature=${REDACTED}`);
  });
});
