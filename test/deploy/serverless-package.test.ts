import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { namesDeployedAs } from '../../lib/config.ts';
import { GUIDE_ENV } from '../support/guide-env.ts';
import { apiEvent } from '../support/lambda-events.ts';

/**
 * `npm run package` as a deployer runs it (no AWS credentials), then the CloudFormation it
 * produced: the trigger, one function and one narrow role per operation, every setting passed
 * through without a default of its own, secrets only as Parameter Store names that only the
 * functions needing them may read; and a bundle run on its own, away from node_modules. It is
 * packaged with the storage guide's minimal .env, as a deployer who followed the guide would.
 */

const root = resolve(import.meta.dirname, '..', '..');
const FUNCTIONS = ['CreateUpload', 'PresignParts', 'ListParts', 'CompleteUpload', 'SignS3Request', 'GetFileInfo', 'GetFileSize', 'GetFile', 'CreatePlaybackLink', 'DeleteFile', 'ListDeletedFiles', 'RestoreFile', 'ProcessUpload', 'Sweep', 'Redrive'];
let template: any;
const KEK = randomBytes(32).toString('base64');

beforeAll(async () => {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STORAGE_'))),
    ...GUIDE_ENV,
    STORAGE_AUTH_JWT_SECRET: 'must-not-reach-the-template-0123456789',
    STORAGE_ENCRYPTION_KEYS: `nor-these:${KEK}`,
    STORAGE_SECRET_KEY: 'nor-this',
    STORAGE_SWEEP_INTERVAL_SECONDS: '290',
  };
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
      expect(fn(name).Handler).toMatch(/^\.build\/functions\/[a-z0-9-]+\.handler$/);
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
    expect(routes).toEqual([
      'DELETE /files/{fileId}',
      'GET /deleted-files',
      'GET /files/{fileId}',
      'GET /files/{fileId}/content',
      'GET /files/{fileId}/parts',
      'GET /files/{fileId}/size',
      'POST /files',
      'POST /files/{fileId}/complete',
      'POST /files/{fileId}/links',
      'POST /files/{fileId}/parts',
      'POST /files/{fileId}/restore',
      'POST /files/{fileId}/s3-requests',
    ]);
  });

  // Each function's role, grant by grant: function-roles.test.ts.

  it('versions the final bucket with the recovery window: noncurrent versions expire after it (7 days by default)', () => {
    const bucket = resources().FilesBucket!.Properties;
    expect(bucket.VersioningConfiguration.Status).toEqual({ 'Fn::If': ['HasRecoveryWindow', 'Enabled', 'Suspended'] });
    // At 0, a one-day rule drains what a versioned bucket kept before.
    expect(bucket.LifecycleConfiguration.Rules).toEqual([
      expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: { 'Fn::If': ['HasRecoveryWindow', '7', 1] } }, ExpiredObjectDeleteMarker: true }),
      // The sealing runs start their multipart uploads early: one killed leaves parts, aborted after a day.
      expect.objectContaining({ Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
    ]);
    expect(template.Conditions.HasRecoveryWindow).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['7', '0'] }] });
  });

  it('sends what process-upload fails to handle to an SQS dead-letter queue, after two retries', () => {
    const [queueId, queue] = Object.entries(resources()).find(([, r]) => r.Type === 'AWS::SQS::Queue')!;
    expect(queue.Properties.MessageRetentionPeriod).toBe(1209600);
    const config = Object.values(resources()).find(
      (r) => r.Type === 'AWS::Lambda::EventInvokeConfig' && r.Properties.FunctionName.Ref === 'ProcessUploadLambdaFunction',
    )!;
    expect(config.Properties.MaximumRetryAttempts).toBe(2);
    expect(config.Properties.DestinationConfig.OnFailure.Destination).toEqual({ 'Fn::GetAtt': [queueId, 'Arn'] });
    const sqsActions = (name: string) =>
      roleOf(name)
        .Policies.flatMap((p: any) => p.PolicyDocument.Statement)
        .filter((s: any) => (s.Action ?? []).some((a: string) => a.startsWith('sqs:')))
        .flatMap((s: any) => {
          expect(s.Resource).toEqual({ 'Fn::GetAtt': [queueId, 'Arn'] });
          return s.Action;
        })
        .sort();
    // The function role sends to the destination (Lambda uses it), and a run that gives up files its own letter.
    expect(sqsActions('ProcessUpload')).toEqual(['sqs:SendMessage']);
    expect(sqsActions('Redrive')).toEqual(['sqs:DeleteMessage', 'sqs:ReceiveMessage']);
    for (const name of ['CreateUpload', 'GetFileInfo', 'DeleteFile']) expect(sqsActions(name)).toEqual([]);
    for (const name of ['ProcessUpload', 'Sweep', 'Redrive']) {
      expect(fn(name).Environment.Variables.STORAGE_DEAD_LETTER_QUEUE_URL).toEqual({ Ref: queueId });
    }
  });

  it('runs the sweep on an EventBridge schedule at the configured interval, in whole minutes', () => {
    const rule = Object.values(resources()).find((r) => r.Type === 'AWS::Events::Rule')!;
    expect(rule.Properties.ScheduleExpression).toBe('rate(5 minutes)');
    expect(rule.Properties.State).toBe('ENABLED');
    expect(rule.Properties.Targets[0].Arn['Fn::GetAtt'][0]).toBe('SweepLambdaFunction');
    expect(fn('Sweep').Timeout).toBe(900);
  });

  it('passes every deployable setting through with no default of its own, and names the guide\'s buckets', () => {
    const source = parse(readFileSync(join(root, 'serverless.yml'), 'utf8'));
    const written: Record<string, unknown> = source.provider.environment;
    // Each name the schema deploys "as packaged" is passed through, empty when unset: lib/config.ts alone holds its default.
    for (const name of namesDeployedAs('env')) expect(written[name], name).toBe(`\${env:${name}, ''}`);
    const storageNames = Object.keys(written).filter((name) => name.startsWith('STORAGE_'));
    // The alarms' thresholds and address are the template's alone: no function reads them.
    const forFunctions = namesDeployedAs('env', 'resolved').filter((name) => !name.startsWith('STORAGE_ALARM_'));
    expect(storageNames.sort()).toEqual([...forFunctions, 'STORAGE_AUTH_JWT_SECRET_PARAMETER', 'STORAGE_ENCRYPTION_KEYS_PARAMETER'].sort());
    for (const name of FUNCTIONS) {
      const variables = fn(name).Environment.Variables;
      for (const local of namesDeployedAs('local', 'secret')) expect(variables, `${name} ${local}`).not.toHaveProperty(local);
      expect(variables.STORAGE_BUCKET).toBe('audio-files');
      expect(variables.STORAGE_INCOMING_BUCKET).toBe('audio-files-incoming');
      expect(variables.STORAGE_ALLOWED_EXTENSIONS).toBe('.mp3,.wav,.m4a');
      expect(variables.STORAGE_MAX_FILE_SIZE).toBe('104857600');
      expect(variables.STORAGE_UPLOAD_URL_TTL_SECONDS).toBe('');
    }
    const buckets = Object.values(resources()).filter((r) => r.Type === 'AWS::S3::Bucket' && r.Properties?.BucketName).map((r) => r.Properties.BucketName).sort();
    expect(buckets).toEqual(['audio-files', 'audio-files-incoming']);
  });

  it('keeps secrets out of every environment: each function may read only the Parameter Store secrets it needs', () => {
    expect(JSON.stringify(template)).not.toMatch(/must-not-reach|nor-this|nor-these/);
    expect(JSON.stringify(template)).not.toContain(KEK);
    expect(template.Parameters.JwtSecretParameter.Default).toBe('/transcribo-storage/dev/jwt-secret');
    expect(template.Parameters.EncryptionKeysParameter.Default).toBe('/transcribo-storage/dev/encryption-keys');
    // Every function opens or writes sealed manifests.
    const needsKeys = FUNCTIONS;
    const http = FUNCTIONS.filter((name) => !['ProcessUpload', 'Sweep', 'Redrive'].includes(name));
    /** The parameters a function's role may read, by the CloudFormation parameter that names them. */
    const readable = (name: string) => {
      const statements = roleOf(name).Policies.flatMap((p: any) => p.PolicyDocument.Statement);
      const ssm = statements.filter((s: any) => JSON.stringify(s.Action ?? '').includes('ssm:'));
      for (const s of ssm) expect(s.Action, name).toEqual(['ssm:GetParameter']);
      // arn:<partition>:ssm:<region>:<account>:parameter<name>, name from the template's parameter.
      return ssm.map((s: any) => s.Resource['Fn::Join'][1].at(-1).Ref).sort();
    };
    for (const name of FUNCTIONS) {
      const variables = fn(name).Environment.Variables;
      const named = Object.entries(variables)
        .filter(([variable, value]) => variable.endsWith('_PARAMETER') && value !== '')
        .map(([, value]) => (value as { Ref: string }).Ref)
        .sort();
      const expected = [...(http.includes(name) ? ['JwtSecretParameter'] : []), ...(needsKeys.includes(name) ? ['EncryptionKeysParameter'] : [])];
      expect(named, name).toEqual(expected.sort());
      expect(readable(name), name).toEqual(expected.sort());
      // With a customer managed key, kms:Decrypt on it alone; without one, nothing. (The KMS
      // key-encryption key's statements are under a condition of their own: function-roles.test.ts.)
      const kms = roleOf(name).Policies.flatMap((p: any) => p.PolicyDocument.Statement).filter((s: any) => s['Fn::If']?.[0] === 'HasSecretsKmsKey');
      expect(kms, name).toEqual([{ 'Fn::If': ['HasSecretsKmsKey', { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: { Ref: 'SecretsKmsKeyArn' } }, { Ref: 'AWS::NoValue' }] }]);
      expect(fn(name).Environment.Variables.POWERTOOLS_PARAMETERS_MAX_AGE).toBe('300');
    }
  });

  it('produces bundles that run on their own, in a bare Node, without node_modules or TypeScript', async () => {
    const alone = mkdtempSync(join(tmpdir(), 'transcribo-bundle-'));
    try {
      cpSync(join(root, '.build', 'functions', 'get-file-info.mjs'), join(alone, 'get-file-info.mjs'));
      const event = JSON.stringify(apiEvent({ method: 'GET', path: '/files/x', fileId: 'x' }));
      const script = `const { handler } = await import('./get-file-info.mjs');
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

