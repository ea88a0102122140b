import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadLocalEnv } from '../../../scripts/local/dot-env.ts';

/** What npm start takes from the file `npm run minio` leaves: all of it, or none of it. */

const NAMES = ['STORAGE_ENDPOINT', 'STORAGE_PORT', 'STORAGE_SECURE', 'STORAGE_ACCESS_KEY', 'STORAGE_SECRET_KEY', 'TRANSCRIBO_LOCAL_DIR'];
let saved: Record<string, string | undefined>;
let dir: string;

beforeEach(() => {
  saved = Object.fromEntries(NAMES.map((name) => [name, process.env[name]]));
  for (const name of NAMES) delete process.env[name];
  dir = mkdtempSync(join(tmpdir(), 'transcribo-dot-env-'));
  process.env.TRANSCRIBO_LOCAL_DIR = dir;
  writeFileSync(join(dir, 'minio.env'), 'STORAGE_ENDPOINT=127.0.0.1\nSTORAGE_PORT=9000\nSTORAGE_SECURE=false\nSTORAGE_ACCESS_KEY=local\nSTORAGE_SECRET_KEY=local-secret\n');
});
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('loadLocalEnv', () => {
  it("takes npm run minio's settings where no storage endpoint is configured, keeping the keys the environment sets", () => {
    process.env.STORAGE_ACCESS_KEY = 'mine';
    expect(loadLocalEnv().sort()).toEqual(['STORAGE_ENDPOINT', 'STORAGE_PORT', 'STORAGE_SECRET_KEY', 'STORAGE_SECURE']);
    expect(process.env.STORAGE_PORT).toBe('9000');
    expect(process.env.STORAGE_ACCESS_KEY).toBe('mine');
  });

  it("mixes none of them into an endpoint of the user's own: no local port, keys or plain http on a remote host", () => {
    process.env.STORAGE_ENDPOINT = 'storage.example.com';
    expect(loadLocalEnv()).toEqual([]);
    for (const name of ['STORAGE_PORT', 'STORAGE_SECURE', 'STORAGE_ACCESS_KEY', 'STORAGE_SECRET_KEY']) expect(process.env[name], name).toBeUndefined();
  });
});
