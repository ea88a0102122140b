/**
 * What `npm start` prints once it is ready: where the API, the storage and the metrics are, and
 * commands that work as printed (test/e2e/npm-start-embedded.test.ts runs each of them).
 */
import { join } from 'node:path';
import type { StorageConfig } from '../../lib/config.ts';
import { signBearerToken } from './dev-token.ts';

export async function readyBanner(
  config: StorageConfig,
  at: { root: string; httpHost: string; httpPort: number; eventsHost: string; eventsPort: number; embeddedDir?: string; metricsFile: string },
): Promise<string> {
  // A token the configuration accepts: within its longest life, with its issuer and audience.
  const life = Math.min(12 * 3600, config.auth.maxTokenLifetimeSeconds);
  const token = await signBearerToken(config.jwtSecret!, 'dev-user', `${life}s`, { issuer: config.auth.issuer, audience: config.auth.audience?.[0] });
  // Listening on every interface (in a container) is still reached on loopback from this host.
  const api = `http://${at.httpHost === '0.0.0.0' ? '127.0.0.1' : at.httpHost}:${at.httpPort}`;
  const storage =
    at.embeddedDir !== undefined
      ? `embedded S3 emulator (s3rver) on ${config.endpoint}, data in ${at.embeddedDir} — enforces no signatures, POST policies or sizes`
      : `${config.endpoint} (presigned URLs signed for ${config.publicEndpoint}), events via webhook on http://${at.eventsHost}:${at.eventsPort}/minio-events`;
  const page = new URL(`file://${join(at.root, 'examples', 'browser-upload.html')}`);
  // With an identity provider, the local token is no use: the page asks for one of the provider's.
  page.search = new URLSearchParams(config.auth.jwksUrl === undefined ? { api, token } : { api }).toString();
  return [
    '',
    `Transcribo storage is ready.`,
    `  API      ${api}  (POST /files, GET /files/{id}, /files/{id}/size, /files/{id}/content, DELETE /files/{id}, GET /deleted-files…: README, HTTP API)`,
    `  storage  ${storage}`,
    `  buckets  ${config.incomingBucket} (uploads) → ${config.bucket} (encrypted files)`,
    `  sweep    every ${config.sweep.intervalSeconds} s; dead letters in ${config.deadLetterQueueUrl ?? `${config.bucket}/dead-letters/`} (npm run redrive)`,
    `  metrics  appended to ${at.metricsFile} (npm run stats)`,
    '',
    ...(config.auth.jwksUrl === undefined
      ? [
          `Try it from another terminal in this folder (a token for sub "dev-user", valid ${life / 3600} h); each line pastes as it is:`,
          `  export TOKEN='${token}' TRANSCRIBO_API='${api}'`,
          `  npm run try    # a generated recording: create, upload, wait, read back (npm run try -- your.wav for your own)`,
          `  curl -s -X POST "$TRANSCRIBO_API/files" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"filename":"memo.wav","contentType":"audio/wav","size":48044}'`,
        ]
      : [
          `Callers' tokens come from the identity provider of ${config.auth.jwksUrl.href} (RS256/ES256): with one of them,`,
          `  export TOKEN='<a token from your identity provider>' TRANSCRIBO_API='${api}'`,
          '  npm run try',
        ]),
    '',
    `Or in a browser: ${page.href}`,
    '',
  ].join('\n');
}
