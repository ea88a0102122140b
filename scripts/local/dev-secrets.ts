/**
 * Secrets for a local run when none are configured: generated once, kept in .local/ (git
 * ignored) so files encrypted yesterday still decrypt today. Never used when deployed: the
 * deployed functions refuse to start without STORAGE_AUTH_JWT_SECRET and keys.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface DevSecrets {
  jwtSecret: string;
  encryptionKeys: string;
}

export async function loadOrCreateDevSecrets(file: string): Promise<DevSecrets> {
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = {
    jwtSecret: randomBytes(32).toString('base64url'),
    encryptionKeys: `local1:${randomBytes(32).toString('base64')}`,
  };
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
