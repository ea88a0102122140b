import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ownerFromAuthorization } from '../../lib/auth/caller-token.ts';
import { parseConfig } from '../../lib/config.ts';

/** `npm run token -- <subject>`: a token the product accepts as that owner, and nothing else. */

const run = (args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, ['scripts/token.ts', ...args], { env: { ...process.env, STORAGE_AUTH_JWKS_URL: '', ...env } });

describe('npm run token', () => {
  it('signs a token the HTTP functions take as that subject, for the lifetime asked', async () => {
    const secret = randomBytes(32).toString('hex');
    const { stdout } = await run(['bob', '10m'], { STORAGE_AUTH_JWT_SECRET: secret });
    const token = stdout.trim();
    const config = parseConfig({ STORAGE_AUTH_JWT_SECRET: secret });
    expect(await ownerFromAuthorization(`Bearer ${token}`, config)).toBe('bob');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
    expect(claims.exp - claims.iat).toBe(600);
    // Under another secret it is nobody.
    await expect(ownerFromAuthorization(`Bearer ${token}`, parseConfig({ STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex') }))).rejects.toThrow();
  });

  it('refuses without a subject, and where an identity provider issues the tokens', async () => {
    await expect(run([], { STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex') })).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('usage: npm run token') });
    await expect(run(['bob'], { STORAGE_AUTH_JWKS_URL: 'https://idp.example/jwks.json' })).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('identity provider') });
  });
});
