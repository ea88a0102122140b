import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CONFIG_NAMES, namesDeployedAs, parseConfig } from '../../lib/config.ts';
import { GUIDE_ENV } from '../support/guide-env.ts';
import { WEBHOOK_TARGET_ID } from '../../scripts/local/webhook-target.ts';
import { MINIO_VERSION } from '../../scripts/minio/install.ts';

/**
 * No Docker engine runs on these machines, so `docker compose up` cannot be run here; this
 * keeps the compose file in step with what can be checked: the configuration schema (every name,
 * no default of its own), the storage guide's .env, the start script's ports and webhook target,
 * and the MinIO version the tests use.
 */

const root = resolve(import.meta.dirname, '..', '..');
const compose = parse(readFileSync(resolve(root, 'docker-compose.yml'), 'utf8'));
const minio = compose.services.minio;
const functions = compose.services.functions;

/** What compose makes of `${NAME:-default}` values, given the variables of a .env. */
function interpolate(environment: Record<string, string>, dotEnv: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => {
      const match = /^\$\{([A-Z_]+):-(.*)\}$/.exec(String(value));
      return [name, match ? dotEnv[match[1]!] || match[2]! : String(value)];
    }),
  );
}
const functionEnv: Record<string, string> = functions.environment;

describe('docker-compose.yml', () => {
  it("is valid Compose: the specification's schema, interpolations, references, Dockerfiles, localhost ports", async () => {
    const { checkComposeFile } = await import('../support/compose-check.ts');
    expect(checkComposeFile(resolve(root, 'docker-compose.yml'))).toEqual([]);
    // docker-compose itself, where it happens to be installed: more evidence, never a requirement.
    let cli = true;
    try {
      execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    } catch {
      cli = false;
    }
    if (cli) execFileSync('docker-compose', ['-f', resolve(root, 'docker-compose.yml'), 'config', '-q'], { stdio: 'pipe' });
  });

  it('passes every setting through with no default of its own, but where the functions reach MinIO by service name', () => {
    const storageNames = Object.keys(functionEnv).filter((k) => k.startsWith('STORAGE_'));
    // Deployment-only names (Parameter Store, the template's queue, the CloudWatch alarms' thresholds) and a CA file (this MinIO speaks http) are not compose's.
    const notHere = new Set([...namesDeployedAs('template'), ...CONFIG_NAMES.filter((name) => name.startsWith('STORAGE_ALARM_')), 'STORAGE_CA_FILE']);
    expect(storageNames.sort()).toEqual(CONFIG_NAMES.filter((name) => !notHere.has(name)).sort());
    const connection = new Set(['STORAGE_ENDPOINT', 'STORAGE_PORT', 'STORAGE_SECURE', 'STORAGE_PUBLIC_ENDPOINT', 'STORAGE_ACCESS_KEY', 'STORAGE_SECRET_KEY']);
    for (const name of storageNames.filter((n) => !connection.has(n))) expect(functionEnv[name], name).toBe(`\${${name}:-}`);
    expect(functionEnv.STORAGE_ENDPOINT).toBe('minio');
  });

  it("works with the storage guide's minimal .env unchanged, with the bucket names npm start and the template use", () => {
    const withGuide = parseConfig(interpolate(functionEnv, GUIDE_ENV));
    expect(withGuide.endpoint).toBe('http://minio:9000');
    expect(withGuide.publicEndpoint).toBe('http://localhost:9000');
    expect([withGuide.bucket, withGuide.incomingBucket]).toEqual(['audio-files', 'audio-files-incoming']);
    expect([withGuide.bucket, withGuide.incomingBucket]).toEqual([parseConfig(GUIDE_ENV).bucket, parseConfig(GUIDE_ENV).incomingBucket]);
    expect(interpolate(minio.environment, GUIDE_ENV).MINIO_ROOT_USER).toBe('minioadmin');
    // And with no .env at all: the schema's defaults, as npm start has them.
    const bare = parseConfig(interpolate(functionEnv, {}));
    expect([bare.bucket, bare.incomingBucket]).toEqual([parseConfig({}).bucket, parseConfig({}).incomingBucket]);
  });

  it('signs presigned URLs for the address a browser on the host reaches, not the service name', () => {
    const config = parseConfig(interpolate(functionEnv, {}));
    expect(config.endpoint).toBe('http://minio:9000');
    expect(config.publicEndpoint).toBe('http://localhost:9000');
    expect(minio.ports).toContain('127.0.0.1:9000:9000');
  });

  it('gives MinIO the same root credentials the functions use', () => {
    expect(minio.environment.MINIO_ROOT_USER).toBe(functionEnv.STORAGE_ACCESS_KEY);
    expect(minio.environment.MINIO_ROOT_PASSWORD).toBe(functionEnv.STORAGE_SECRET_KEY);
  });

  it('keeps the generated secrets, the keys of every stored file, in a volume that outlives the container', () => {
    expect(functions.volumes).toContain('local-state:/app/.local');
    expect(compose.volumes).toHaveProperty('local-state');
    expect(readFileSync(resolve(root, 'deploy/functions.Dockerfile'), 'utf8')).toMatch(/^WORKDIR \/app$/m);
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

  it('gives MinIO a KMS key generated once into the secrets volume, so buckets can encrypt at rest', () => {
    const shell = (parts: string[]) => parts.join(' ').replaceAll('$$', '$');
    expect(shell(compose.services.secrets.entrypoint)).toMatch(/test -s \/secrets\/minio-kms-key \|\| echo "transcribo:\$\(head -c 32 \/dev\/urandom \| base64\)" > \/secrets\/minio-kms-key/);
    expect(shell(minio.entrypoint)).toMatch(/^\/bin\/sh -c MINIO_KMS_SECRET_KEY="\$\(cat \/secrets\/minio-kms-key\)" .* exec \/usr\/local\/bin\/minio server/);
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
