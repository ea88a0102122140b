import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** Reads the repository's .env into the environment, as every local command does (variables already set win). */
export function loadDotEnv(): void {
  const file = resolve(import.meta.dirname, '..', '..', '.env');
  if (existsSync(file)) process.loadEnvFile(file);
}
