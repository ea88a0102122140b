/**
 * Secrets for a local run when none are configured: generated once, kept in .local/ (git
 * ignored) so files encrypted yesterday still decrypt today. Never used when deployed: the
 * deployed functions refuse to start without STORAGE_AUTH_JWT_SECRET and keys.
 *
 * `eventsToken` is the bearer token MinIO's webhook presents to the local event relay; the
 * MinIO of `npm run minio` reads it from the same file, so the two agree.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export interface DevSecrets {
  jwtSecret: string;
  encryptionKeys: string;
  eventsToken: string;
}

/** Where local state lives (emulator data, generated secrets); tests point it elsewhere. */
export function localDirectory(): string {
  return resolve(import.meta.dirname, '..', '..', process.env.TRANSCRIBO_LOCAL_DIR ?? '.local');
}

export function devSecretsFile(): string {
  return join(localDirectory(), 'dev-secrets.json');
}

export async function loadOrCreateDevSecrets(file = devSecretsFile()): Promise<DevSecrets> {
  const existing: Partial<DevSecrets> = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) : {};
  const secrets: DevSecrets = {
    jwtSecret: existing.jwtSecret ?? randomBytes(32).toString('base64url'),
    encryptionKeys: existing.encryptionKeys ?? `local1:${randomBytes(32).toString('base64')}`,
    // Files written before the token existed gain one.
    eventsToken: existing.eventsToken ?? randomBytes(24).toString('base64url'),
  };
  if (Object.keys(existing).length !== Object.keys(secrets).length) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  }
  return secrets;
}
