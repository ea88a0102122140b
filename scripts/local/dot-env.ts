import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { localDirectory } from './dev-secrets.ts';

/** Reads the repository's .env into the environment, as every local command does (variables already set win). */
export function loadDotEnv(): void {
  const file = resolve(import.meta.dirname, '..', '..', '.env');
  if (existsSync(file)) process.loadEnvFile(file);
}

/** Where `npm run minio` leaves the settings that reach the MinIO it runs. */
export function minioEnvFile(): string {
  return join(localDirectory(), 'minio.env');
}

/**
 * .env, then the settings `npm run minio` wrote, so `npm start` finds the MinIO it started with
 * nothing copied by hand. They are taken whole or not at all: where the environment or .env
 * names a storage endpoint of its own, none of them (port, keys, http) is mixed into it. Returns
 * the names taken from the MinIO file.
 */
export function loadLocalEnv(): string[] {
  loadDotEnv();
  const file = minioEnvFile();
  if (!existsSync(file) || process.env.STORAGE_ENDPOINT) return [];
  const taken: string[] = [];
  for (const [name, value] of Object.entries(parseEnv(readFileSync(file, 'utf8')))) {
    if (process.env[name]) continue;
    process.env[name] = value;
    taken.push(name);
  }
  return taken;
}
