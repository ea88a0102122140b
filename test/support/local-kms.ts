import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getFreePort } from '../../scripts/shared/ports.ts';
import { findGo } from '../../scripts/shared/processes.ts';
import { cachedTool, runTool } from './tool-cache.ts';

/**
 * A KMS for tests: local-kms (github.com/nsmithuk/local-kms), an emulator of the AWS KMS API
 * (GenerateDataKey, Encrypt, Decrypt with encryption contexts, real ciphertext blobs), built once
 * with the Go that MinIO already needs. It stands in for AWS KMS, which these machines cannot
 * reach; the storage under test is still the real MinIO.
 */
export const LOCAL_KMS_MODULE = 'github.com/nsmithuk/local-kms';
export const LOCAL_KMS_VERSION = 'v0.0.0-20260228092603-2a5e92d09ab6';

export interface LocalKms {
  endpoint: string;
  /** ARN of a symmetric key seeded at start. */
  keyArn: string;
  stop(): Promise<void>;
}

export async function startLocalKms(): Promise<LocalKms> {
  const dir = await cachedTool(`local-kms-${LOCAL_KMS_VERSION}`, async (staging) => {
    const go = findGo();
    if (go === undefined) throw new Error('local-kms is built with Go, and there is no go on PATH');
    await runTool(go, ['install', `${LOCAL_KMS_MODULE}@${LOCAL_KMS_VERSION}`], { ...process.env, GOBIN: staging }, `building local-kms (go install ${LOCAL_KMS_MODULE}@${LOCAL_KMS_VERSION})`);
  });
  const work = mkdtempSync(join(tmpdir(), 'transcribo-kms-'));
  const keyId = randomUUID();
  const account = '111122223333';
  writeFileSync(
    join(work, 'seed.yaml'),
    ['Keys:', '  Symmetric:', '    Aes:', '      - Metadata:', `          KeyId: ${keyId}`, '        BackingKeys:', `          - ${randomBytes(32).toString('hex')}`, ''].join('\n'),
  );
  const port = await getFreePort();
  const child: ChildProcess = spawn(join(dir, 'local-kms'), [], {
    env: { PATH: process.env.PATH, PORT: String(port), KMS_REGION: 'us-east-1', KMS_ACCOUNT_ID: account, KMS_SEED_PATH: join(work, 'seed.yaml'), KMS_DATA_PATH: join(work, 'data') },
    stdio: 'ignore',
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`local-kms exited (${child.exitCode}) before it answered`);
    const answered = await fetch(endpoint, { method: 'POST', headers: { 'X-Amz-Target': 'TrentService.ListKeys', 'Content-Type': 'application/x-amz-json-1.1' }, body: '{}' })
      .then((r) => r.ok)
      .catch(() => false);
    if (answered) break;
    if (Date.now() > deadline) throw new Error('local-kms did not answer within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    keyArn: `arn:aws:kms:us-east-1:${account}:key/${keyId}`,
    stop: async () => {
      child.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    },
  };
}
