import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { apiEvent } from '../support/lambda-events.ts';

/**
 * `npm run package` as a deployer runs it (no AWS credentials), then the CloudFormation it
 * produced: the trigger, one function and one narrow role per operation, secrets as
 * parameters; and a bundle run on its own, away from node_modules.
 */

const root = resolve(import.meta.dirname, '..', '..');
const FUNCTIONS = ['CreateUpload', 'GetInfo', 'GetSize', 'GetContent', 'DeleteFile', 'ProcessUpload'];
let template: any;

beforeAll(async () => {
  const env = { ...process.env, STORAGE_AUTH_JWT_SECRET: 'must-not-reach-the-template-0123456789', STORAGE_SECRET_KEY: 'nor-this' };
  await promisify(execFile)(process.execPath, ['scripts/package.ts'], { cwd: root, env, maxBuffer: 16 << 20 });
  template = JSON.parse(readFileSync(join(root, '.serverless', 'cloudformation-template-update-stack.json'), 'utf8'));
}, 180_000);

const resources = () => template.Resources as Record<string, { Type: string; Properties: any }>;
const fn = (name: string) => resources()[`${name}LambdaFunction`]!.Properties;
const roleOf = (name: string) => resources()[fn(name).Role['Fn::GetAtt'][0]]!.Properties;

describe('npm run package', () => {
  it('has one Node 24 function per operation, each with a bundle of its own', () => {
    const lambdas = Object.entries(resources()).filter(([, r]) => r.Type === 'AWS::Lambda::Function').map(([k]) => k);
    expect(lambdas.sort()).toEqual(FUNCTIONS.map((f) => `${f}LambdaFunction`).sort());
    for (const name of FUNCTIONS) {
      expect(fn(name).Runtime).toBe('nodejs24.x');
      expect(fn(name).Handler).toMatch(/^\.build\/functions\/[a-z-]+\.handler$/);
      expect(fn(name).Code.S3Key).toMatch(new RegExp(`${name[0]!.toLowerCase()}${name.slice(1)}\\.zip$`));
    }
  });

  it('triggers process-upload on objects created under uploads/ in the incoming bucket, which browsers may POST to', () => {
    const bucket = Object.values(resources()).find((r) => r.Type === 'AWS::S3::Bucket' && r.Properties.NotificationConfiguration)!;
    const [config] = bucket.Properties.NotificationConfiguration.LambdaConfigurations;
    expect(config.Event).toBe('s3:ObjectCreated:*');
    expect(config.Function['Fn::GetAtt'][0]).toBe('ProcessUploadLambdaFunction');
    expect(config.Filter.S3Key.Rules).toEqual([{ Name: 'prefix', Value: 'uploads/' }]);
    expect(bucket.Properties.CorsConfiguration.CorsRules[0].ExposedHeaders).toContain('ETag');
    expect(bucket.Properties.PublicAccessBlockConfiguration.BlockPublicPolicy).toBe(true);
    const permission = Object.values(resources()).find(
      (r) => r.Type === 'AWS::Lambda::Permission' && r.Properties.Principal === 's3.amazonaws.com',
    )!;
    expect(permission.Properties.FunctionName['Fn::GetAtt'][0]).toBe('ProcessUploadLambdaFunction');
  });

  it('routes the HTTP API to the right functions', () => {
    const routes = Object.values(resources())
      .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
      .map((r) => r.Properties.RouteKey)
      .sort();
    expect(routes).toEqual(['DELETE /files/{fileId}', 'GET /files/{fileId}', 'GET /files/{fileId}/content', 'GET /files/{fileId}/size', 'POST /files']);
  });

  it('gives each function a role of its own kind, limited to the S3 actions and keys it uses', () => {
    const s3Statements = (name: string) =>
      roleOf(name).Policies.flatMap((p: any) => p.PolicyDocument.Statement).filter((s: any) => s.Action.some((a: string) => a.startsWith('s3:')));
    const actions = (name: string) => [...new Set(s3Statements(name).flatMap((s: any) => s.Action))].sort();
    expect(actions('CreateUpload')).toEqual(['s3:PutObject']);
    expect(actions('GetInfo')).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect(actions('DeleteFile')).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:ListBucket']);
    expect(actions('ProcessUpload')).toEqual(['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
    expect(fn('GetInfo').Role).toEqual(fn('GetContent').Role);
    expect(fn('CreateUpload').Role).not.toEqual(fn('ProcessUpload').Role);
    for (const name of FUNCTIONS) {
      for (const statement of s3Statements(name)) {
        expect(statement.Action).not.toContain('s3:*');
        for (const resource of statement.Resource) {
          expect(resource).toMatch(/^arn:aws:s3:::transcribo-(files|incoming)-dev(\/(manifests|files|uploads)\/\*)?$/);
        }
      }
    }
    // Only process-upload and delete may remove stored recordings.
    const deletesFiles = FUNCTIONS.filter((name) =>
      s3Statements(name).some((s: any) => s.Action.includes('s3:DeleteObject') && s.Resource.some((r: string) => r.endsWith('/files/*'))),
    );
    expect(deletesFiles.sort()).toEqual(['DeleteFile', 'ProcessUpload']);
  });

  it('wires secrets from NoEcho parameters and keeps this shell\'s secrets out of the template', () => {
    for (const parameter of ['JwtSecret', 'EncryptionKeys']) expect(template.Parameters[parameter].NoEcho).toBe(true);
    const env = fn('CreateUpload').Environment.Variables;
    expect(env.STORAGE_AUTH_JWT_SECRET).toEqual({ Ref: 'JwtSecret' });
    expect(env.STORAGE_ENCRYPTION_KEYS).toEqual({ Ref: 'EncryptionKeys' });
    expect(env.STORAGE_ENCRYPTION_ACTIVE_KEY_ID).toEqual({ Ref: 'ActiveEncryptionKeyId' });
    expect(env.STORAGE_SECRET_KEY).toBe('');
    expect(JSON.stringify(template)).not.toMatch(/must-not-reach|nor-this/);
  });

  it('produces bundles that run on their own, in a bare Node, without node_modules or TypeScript', async () => {
    const alone = mkdtempSync(join(tmpdir(), 'transcribo-bundle-'));
    try {
      cpSync(join(root, '.build', 'functions', 'get-info.mjs'), join(alone, 'get-info.mjs'));
      const event = JSON.stringify(apiEvent({ method: 'GET', path: '/files/x', fileId: 'x' }));
      const script = `const { handler } = await import('./get-info.mjs');
        const reply = await handler(${event}, { awsRequestId: 'r', getRemainingTimeInMillis: () => 1000 });
        process.stdout.write(JSON.stringify(reply));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
        cwd: alone,
        env: { PATH: process.env.PATH, STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_KEYS: `k:${'A'.repeat(43)}=`, POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' },
      });
      const reply = JSON.parse(stdout);
      expect(reply.statusCode).toBe(401);
      expect(JSON.parse(reply.body).error.type).toBe('UnauthorizedError');
    } finally {
      rmSync(alone, { recursive: true, force: true });
    }
  });
});

