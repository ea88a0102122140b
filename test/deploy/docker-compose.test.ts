import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CONFIG_NAMES, parseConfig } from '../../lib/config.ts';
import { WEBHOOK_TARGET_ID } from '../../scripts/local/webhook-target.ts';
import { MINIO_VERSION } from '../../scripts/minio.ts';

/**
 * No Docker engine runs on these machines, so `docker compose up` cannot be run here; this
 * keeps the compose file in step with what can be checked: .env.example, the configuration
 * schema, the start script's ports and webhook target, and the MinIO version the tests use.
 */

const root = resolve(import.meta.dirname, '..', '..');
const compose = parse(readFileSync(resolve(root, 'docker-compose.yml'), 'utf8'));
const minio = compose.services.minio;
const functions = compose.services.functions;

function dotenv(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(resolve(root, file), 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** `${NAME:-default}` → default; a literal stays itself. */
function composeDefault(value: string): string {
  const match = /^\$\{([A-Z_]+):-(.*)\}$/.exec(String(value));
  return match ? match[2]! : String(value);
}

const example = dotenv('.env.example');
const functionEnv: Record<string, string> = functions.environment;

describe('docker-compose.yml', () => {
  it('is valid for docker-compose (checked whenever the CLI is installed, always in CI)', () => {
    let cli = true;
    try {
      execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    } catch {
      cli = false;
    }
    if (process.env.CI) expect(cli, '.ci/run installs docker-compose to validate the file').toBe(true);
    if (cli) execFileSync('docker-compose', ['-f', resolve(root, 'docker-compose.yml'), 'config', '-q'], { stdio: 'pipe' });
  });

  it('names only configuration the product reads, and every name of .env.example', () => {
    const storageNames = Object.keys(functionEnv).filter((k) => k.startsWith('STORAGE_'));
    expect(storageNames.filter((name) => !CONFIG_NAMES.includes(name))).toEqual([]);
    expect(Object.keys(example).filter((name) => !CONFIG_NAMES.includes(name))).toEqual([]);
    expect(Object.keys(example).filter((name) => !(name in functionEnv))).toEqual([]);
  });

  it('defaults to the values of .env.example, except where the functions reach MinIO by service name', () => {
    const overridden = new Set(['STORAGE_ENDPOINT']);
    for (const [name, value] of Object.entries(example)) {
      if (overridden.has(name)) continue;
      expect(composeDefault(functionEnv[name]!), name).toBe(value);
    }
    expect(functionEnv.STORAGE_ENDPOINT).toBe('minio');
    // .env.example is a working configuration for `npm start` on the host.
    expect(() => parseConfig(example)).not.toThrow();
    expect(() => parseConfig(Object.fromEntries(Object.entries(functionEnv).map(([k, v]) => [k, composeDefault(v)])))).not.toThrow();
  });

  it('signs presigned URLs for the address a browser on the host reaches, not the service name', () => {
    const config = parseConfig(Object.fromEntries(Object.entries(functionEnv).map(([k, v]) => [k, composeDefault(v)])));
    expect(config.endpoint).toBe('http://minio:9000');
    expect(config.publicEndpoint).toBe('http://localhost:9000');
    expect(minio.ports).toContain('127.0.0.1:9000:9000');
  });

  it('gives MinIO the same root credentials the functions use', () => {
    expect(minio.environment.MINIO_ROOT_USER).toBe(functionEnv.STORAGE_ACCESS_KEY);
    expect(minio.environment.MINIO_ROOT_PASSWORD).toBe(functionEnv.STORAGE_SECRET_KEY);
  });

  it("points MinIO's webhook target, with a queue dir and token, at the start script's event relay", () => {
    const id = WEBHOOK_TARGET_ID;
    expect(minio.environment[`MINIO_NOTIFY_WEBHOOK_ENABLE_${id}`]).toBe('on');
    expect(minio.environment[`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${id}`]).toBe(`http://functions:${functionEnv.TRANSCRIBO_EVENTS_PORT}/minio-events`);
    expect(minio.environment[`MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${id}`]).toMatch(/^\/data\//);
  });

  it('gives MinIO and the functions the same generated webhook token, required by default', () => {
    // What the shell runs: compose turns `$$` into `$`.
    const shell = (parts: string[]) => parts.join(' ').replaceAll('$$', '$');
    expect(shell(compose.services.secrets.entrypoint)).toMatch(/\/dev\/urandom.*> \/secrets\/events-token/);
    const token = '"${TRANSCRIBO_EVENTS_TOKEN:-$(cat /secrets/events-token)}"';
    expect(shell(minio.entrypoint)).toContain(`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${WEBHOOK_TARGET_ID}=${token} exec /usr/local/bin/minio server`);
    expect(shell(functions.command)).toContain(`TRANSCRIBO_EVENTS_TOKEN=${token} exec npm start`);
    expect(minio.environment.TRANSCRIBO_EVENTS_TOKEN).toBe(functionEnv.TRANSCRIBO_EVENTS_TOKEN);
    expect(minio.depends_on.secrets.condition).toBe('service_completed_successfully');
    for (const service of [minio, functions]) expect(service.volumes).toContain('secrets:/secrets:ro');
  });

  it('publishes the API port the start script listens on, on localhost only', () => {
    expect(functions.ports).toEqual([`127.0.0.1:${functionEnv.TRANSCRIBO_HTTP_PORT}:${functionEnv.TRANSCRIBO_HTTP_PORT}`]);
    expect(readFileSync(resolve(root, 'deploy/functions.Dockerfile'), 'utf8')).toMatch(/TRANSCRIBO_HTTP_HOST=0\.0\.0\.0 TRANSCRIBO_EVENTS_HOST=0\.0\.0\.0/);
  });

  it('builds the MinIO version the tests run against', () => {
    expect(minio.build.args.MINIO_VERSION).toBe(MINIO_VERSION);
    expect(minio.image).toContain(MINIO_VERSION);
  });
});
