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
    for (const secret of ['sk-123', 'jwt-secret-value', 'wk-abc', '"pw"', 'RIFF-audio-bytes', 'deadbeef']) {
      expect(out).not.toContain(secret);
    }
    expect(redactingReplacer('x', new Uint8Array(3))).toBe('[3 bytes]');
  });
});
