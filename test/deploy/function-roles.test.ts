import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUIDE_ENV } from '../support/guide-env.ts';

/**
 * Least privilege, function by function: the IAM role of each function in `npm run package`'s
 * CloudFormation grants exactly the (action, resource) pairs of the table below, which says for
 * each grant what code needs it. A grant the code does not need, or a need the template forgot,
 * fails here. Packaged with the storage guide's .env (buckets `audio-files` and
 * `audio-files-incoming`), in a copy of the project: other test files package the project
 * itself, maybe at the same time, and both would write .build/ and .serverless/.
 *
 * A grant reads `<action> <resource>`, the resource as the template has it (S3 ARNs without
 * `arn:aws:s3:::`, CloudFormation references as `${Resource.Attribute}` / `${Parameter}`),
 * then ` prefix <p>` for an `s3:prefix` condition and ` if <Condition>` for a statement that
 * exists only under a template condition.
 */

const root = resolve(import.meta.dirname, '..', '..');

const MANIFESTS = 'audio-files/manifests/*';
const FILES = 'audio-files/files/*';
const PENDING = 'audio-files/pending/*';
const USAGE_CHANGES = 'audio-files/usage/changes/*';
const UPLOADS = 'audio-files-incoming/uploads/*';
const DEAD_LETTERS = '${DeadLetterQueue.Arn}';

/** What every function does to run: its own log group, and active tracing. */
const run = (fn: string) => [
  `logs:CreateLogStream \${${fn}LogGroup.Arn}`,
  `logs:PutLogEvents \${${fn}LogGroup.Arn}`,
  // X-Ray's actions have no resource type: '*' is the only resource they take.
  'xray:PutTraceSegments *',
  'xray:PutTelemetryRecords *',
];
const parameter = (name: string) => `ssm:GetParameter arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter\${${name}}`;
/** Reading a SecureString under a customer managed key needs that key too (none with aws/ssm). */
const DECRYPT_SECRETS = 'kms:Decrypt ${SecretsKmsKeyArn} if HasSecretsKmsKey';
/** HTTP functions: the JWT secret verifies callers (lib/http/http-function.ts) and signs playback links. */
const CALLER = [parameter('JwtSecretParameter'), DECRYPT_SECRETS];
/** The key-encryption keys: every function opens or writes sealed manifests (lib/crypto/manifest-seal.ts, lib/secret-parameters.ts). */
const KMS_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/0b8a3c1e-0000-4000-8000-00000000cafe';
/** With a KMS key-encryption key (packaged here with one): every function opens data keys... */
const OPEN_KEYS = `kms:Decrypt ${KMS_KEY} if HasKmsKeyEncryptionKey`;
/** ... and those that write manifests, recordings or the owner-tag key make them (lib/crypto/kms-key-provider.ts). */
const MAKE_KEYS = `kms:GenerateDataKey ${KMS_KEY} if HasKmsKeyEncryptionKey`;
const KEYS = [parameter('EncryptionKeysParameter'), DECRYPT_SECRETS, OPEN_KEYS];
/** Per-owner quotas (owner-quotas.ts): the owner's usage object and the owner-tag key (owner-tags.ts), 404 when absent. */
const QUOTAS = [
  's3:GetObject audio-files/usage/owners/*',
  's3:PutObject audio-files/usage/owners/*',
  's3:GetObject audio-files/keys/owner-tags.json',
  's3:PutObject audio-files/keys/owner-tags.json',
  's3:ListBucket audio-files prefix usage/owners/*',
  's3:ListBucket audio-files prefix keys/*',
];

/**
 * The recovery window (lib/storage/recovery.ts): the deleted files' entries, listed by prefix; a
 * purge lists the versions of a file's keys and removes each (DeleteObjectVersion).
 */
const DELETED = 'audio-files/deleted/*';
const FIND_DELETED = 's3:ListBucket audio-files prefix deleted/*';
const PURGE = [
  ...['files', 'manifests', 'pending', 'deleted'].map((p) => `s3:ListBucketVersions audio-files prefix ${p}/*`),
  ...['files', 'manifests', 'pending', 'deleted'].map((p) => `s3:DeleteObjectVersion audio-files/${p}/*`),
];
/** The owner tag names an owner's entries; its key may be created by the first caller (owner-tags.ts). */
const OWNER_TAG_KEY = ['s3:GetObject audio-files/keys/owner-tags.json', 's3:PutObject audio-files/keys/owner-tags.json', 's3:ListBucket audio-files prefix keys/*'];

/** ManifestStore.read (lib/storage/manifest.ts), every call's ownership check: 404 for an unknown fileId needs the listing of its key. */
const READ_MANIFEST = [`s3:GetObject ${MANIFESTS}`, 's3:ListBucket audio-files prefix manifests/*'];

/**
 * process-upload.ts's processFile, whoever triggers it (event, sweep, redrive): manifest claim,
 * lease and commit (If-Match PutObject); HEAD and GET of the upload, 404 when gone; the sealed
 * recording as one PutObject or a multipart upload (part-writer.ts), aborted on failure, deleted when the file was
 * deleted meanwhile; upload and pending marker removed once settled; the usage ledger's `.add`.
 */
const PROCESS_FILE = [
  ...READ_MANIFEST,
  `s3:PutObject ${MANIFESTS}`,
  `s3:GetObject ${UPLOADS}`,
  's3:ListBucket audio-files-incoming prefix uploads/*',
  `s3:DeleteObject ${UPLOADS}`,
  `s3:PutObject ${FILES}`,
  `s3:AbortMultipartUpload ${FILES}`,
  `s3:DeleteObject ${FILES}`,
  `s3:DeleteObject ${PENDING}`,
  `s3:PutObject ${USAGE_CHANGES}`,
];

const GRANTS: Record<string, string[]> = {
  // storage-service.ts createUpload: pending.add, manifests.create (If-None-Match), then a presigned POST or PUT of uploads/<id> (presign.ts). Nothing read.
  // With a quota, the owner's usage object first (reserve), and the owner's manifests when a refusal
  // checks for what a lost release left counted.
  CreateUpload: [...run('CreateUpload'), ...CALLER, ...KEYS, MAKE_KEYS, ...QUOTAS, ...READ_MANIFEST, `s3:PutObject ${PENDING}`, `s3:PutObject ${MANIFESTS}`, `s3:PutObject ${UPLOADS}`],
  // getFileInfo, getFileSize, createPlaybackLink: the manifest, nothing else.
  GetFileInfo: [...run('GetFileInfo'), ...CALLER, ...KEYS, ...READ_MANIFEST],
  GetFileSize: [...run('GetFileSize'), ...CALLER, ...KEYS, ...READ_MANIFEST],
  CreatePlaybackLink: [...run('CreatePlaybackLink'), ...CALLER, ...KEYS, ...READ_MANIFEST],
  // getFile: the manifest, then the recording's frames (read-content.ts), opened with the keys; a
  // recording missing behind its manifest answers 404 rather than as refused credentials.
  GetFile: [...run('GetFile'), ...CALLER, ...KEYS, ...READ_MANIFEST, `s3:GetObject ${FILES}`, 's3:ListBucket audio-files prefix files/*'],
  // multipart-upload.ts presignParts: #bind creates the upload (PutObject) or checks the client's
  // upload id (ListParts), binds it in the manifest (PutObject), aborts its own after losing the
  // race; each part URL is a presigned UploadPart (PutObject).
  PresignParts: [
    ...run('PresignParts'), ...CALLER, ...KEYS, MAKE_KEYS, ...READ_MANIFEST,
    `s3:PutObject ${MANIFESTS}`,
    `s3:PutObject ${UPLOADS}`,
    `s3:ListMultipartUploadParts ${UPLOADS}`,
    `s3:AbortMultipartUpload ${UPLOADS}`,
  ],
  // listParts: #partsHeld lists the parts; an upload gone is looked for as an object (HEAD, 404 if
  // absent), and if not there it is unbound from the manifest (PutObject).
  ListParts: [
    ...run('ListParts'), ...CALLER, ...KEYS, MAKE_KEYS, ...READ_MANIFEST,
    `s3:PutObject ${MANIFESTS}`,
    `s3:ListMultipartUploadParts ${UPLOADS}`,
    `s3:GetObject ${UPLOADS}`,
    's3:ListBucket audio-files-incoming prefix uploads/*',
  ],
  // complete: as listParts, then CompleteMultipartUpload (PutObject).
  CompleteUpload: [
    ...run('CompleteUpload'), ...CALLER, ...KEYS, MAKE_KEYS, ...READ_MANIFEST,
    `s3:PutObject ${MANIFESTS}`,
    `s3:ListMultipartUploadParts ${UPLOADS}`,
    `s3:GetObject ${UPLOADS}`,
    's3:ListBucket audio-files-incoming prefix uploads/*',
    `s3:PutObject ${UPLOADS}`,
  ],
  // signS3Request: binds (ListParts on the client's id, PutObject of the manifest) or unbinds, and
  // presigns what Uppy 6 sends: PUT, CreateMultipartUpload, UploadPart, Complete (PutObject),
  // ListParts (GET), AbortMultipartUpload (DELETE).
  SignS3Request: [
    ...run('SignS3Request'), ...CALLER, ...KEYS, MAKE_KEYS, ...READ_MANIFEST,
    `s3:PutObject ${MANIFESTS}`,
    `s3:PutObject ${UPLOADS}`,
    `s3:ListMultipartUploadParts ${UPLOADS}`,
    `s3:AbortMultipartUpload ${UPLOADS}`,
  ],
  // deleteFile: the manifest read and deleted; recording, upload and resumable upload removed
  // (file-objects.ts); the pending marker rewritten (markDeleted) or removed; the ledger's `.remove`.
  DeleteFile: [
    ...run('DeleteFile'), ...CALLER, ...KEYS, MAKE_KEYS, ...QUOTAS, ...READ_MANIFEST,
    `s3:DeleteObject ${MANIFESTS}`,
    `s3:DeleteObject ${FILES}`,
    `s3:DeleteObject ${UPLOADS}`,
    `s3:AbortMultipartUpload ${UPLOADS}`,
    `s3:PutObject ${PENDING}`,
    `s3:DeleteObject ${PENDING}`,
    `s3:PutObject ${USAGE_CHANGES}`,
    // A ready file's entry written before it goes; a purge reads it (HEAD) and removes every version.
    `s3:PutObject ${DELETED}`,
    `s3:GetObject ${DELETED}`,
    FIND_DELETED,
    ...PURGE,
  ],
  // recovery.ts listDeleted: the owner's entries, then each one's last manifest version (and the current one, for a file restored meanwhile).
  ListDeletedFiles: [
    ...run('ListDeletedFiles'), ...CALLER, ...KEYS, MAKE_KEYS, ...OWNER_TAG_KEY, ...READ_MANIFEST,
    FIND_DELETED,
    `s3:GetObjectVersion ${MANIFESTS}`,
    's3:ListBucketVersions audio-files prefix manifests/*',
  ],
  // restoreFile: the entry (HEAD), the current and the last manifest version, the recording's last
  // version (HEAD, its seal id), the delete markers of both and the entry removed; quota as a commit,
  // the delete's unfolded usage change withdrawn and the file added again.
  RestoreFile: [
    ...run('RestoreFile'), ...CALLER, ...KEYS, MAKE_KEYS, ...QUOTAS, ...READ_MANIFEST,
    `s3:GetObject ${DELETED}`,
    FIND_DELETED,
    `s3:GetObjectVersion ${MANIFESTS}`,
    `s3:GetObjectVersion ${FILES}`,
    ...['files', 'manifests', 'deleted'].map((p) => `s3:ListBucketVersions audio-files prefix ${p}/*`),
    ...['files', 'manifests', 'deleted'].map((p) => `s3:DeleteObjectVersion audio-files/${p}/*`),
    `s3:PutObject ${USAGE_CHANGES}`,
    `s3:DeleteObject ${USAGE_CHANGES}`,
  ],
  // processFile, and a dead letter when it gives up (also the function's on-failure destination).
  ProcessUpload: [...run('ProcessUpload'), ...KEYS, MAKE_KEYS, ...QUOTAS, ...PROCESS_FILE, `sqs:SendMessage ${DEAD_LETTERS}`],
  // sweep.ts: processFile for what no event brought; lists uploads/ and pending/ (pending-index.ts);
  // removes leftover uploads; aborts stale multipart uploads of both buckets (listed bucket-wide:
  // no s3:prefix condition for that listing); files the letters of runs that died; folds the usage
  // ledger (usage-ledger.ts: lists and reads changes, reads and writes per-file markers and the
  // totals, deletes changes and uncounted markers; 404 when one is absent).
  Sweep: [
    ...run('Sweep'), ...KEYS, MAKE_KEYS, ...QUOTAS, ...PROCESS_FILE,
    's3:ListBucket audio-files prefix pending/*',
    's3:ListBucket audio-files prefix usage/*',
    `s3:AbortMultipartUpload ${UPLOADS}`,
    's3:ListBucketMultipartUploads audio-files',
    's3:ListBucketMultipartUploads audio-files-incoming',
    `s3:GetObject ${USAGE_CHANGES}`,
    `s3:DeleteObject ${USAGE_CHANGES}`,
    's3:GetObject audio-files/usage/files/*',
    's3:PutObject audio-files/usage/files/*',
    's3:DeleteObject audio-files/usage/files/*',
    's3:GetObject audio-files/usage/totals.json',
    's3:PutObject audio-files/usage/totals.json',
    // recovery.ts expireDeleted: entries past the window listed, each file's versions purged.
    FIND_DELETED,
    ...PURGE,
    `sqs:SendMessage ${DEAD_LETTERS}`,
  ],
  // redrive.ts: processFile again for each letter's uploads, the letter received and then deleted;
  // a redrive that fails keeps its letter and files none.
  Redrive: [...run('Redrive'), ...KEYS, MAKE_KEYS, ...QUOTAS, ...PROCESS_FILE, `sqs:ReceiveMessage ${DEAD_LETTERS}`, `sqs:DeleteMessage ${DEAD_LETTERS}`],
};
const FUNCTIONS = Object.keys(GRANTS);

let copy: string;
let template: any;

beforeAll(async () => {
  copy = mkdtempSync(join(tmpdir(), 'transcribo-roles-'));
  for (const entry of ['package.json', 'serverless.yml', 'tsconfig.json', 'deploy', 'functions', 'lib', 'scripts']) {
    cpSync(join(root, entry), join(copy, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STORAGE_'))), ...GUIDE_ENV, STORAGE_ENCRYPTION_KMS_KEY_ID: KMS_KEY };
  await promisify(execFile)(process.execPath, ['scripts/package.ts'], { cwd: copy, env, maxBuffer: 16 << 20 });
  template = JSON.parse(readFileSync(join(copy, '.serverless', 'cloudformation-template-update-stack.json'), 'utf8'));
}, 180_000);

afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

const resources = () => template.Resources as Record<string, { Type: string; Properties: any }>;
const roleIdOf = (fn: string) => resources()[`${fn}LambdaFunction`]!.Properties.Role['Fn::GetAtt'][0] as string;
const roleOf = (fn: string) => resources()[roleIdOf(fn)]!.Properties;

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, string | string[]>>;
}

const list = <T>(value: T | T[]): T[] => ([] as T[]).concat(value);

/** A resource as the grants above write it. */
function resourceName(resource: unknown): string {
  if (typeof resource === 'string') return resource.replace(/^arn:aws:s3:::/, '');
  const r = resource as Record<string, any>;
  if (r.Ref !== undefined) return `\${${r.Ref}}`;
  if (r['Fn::GetAtt'] !== undefined) return `\${${r['Fn::GetAtt'].join('.')}}`;
  if (r['Fn::Join'] !== undefined && r['Fn::Join'][0] === '') return r['Fn::Join'][1].map(resourceName).join('');
  throw new Error(`unexpected resource ${JSON.stringify(resource)}`);
}

/** The statements of a function's role, conditional ones (Fn::If) with the template condition they stand under. */
function statementsOf(fn: string): { statement: Statement; when: string | undefined }[] {
  return roleOf(fn).Policies.flatMap((policy: any) => policy.PolicyDocument.Statement).map((statement: any) => {
    if (statement['Fn::If'] === undefined) return { statement, when: undefined };
    const [when, then, otherwise] = statement['Fn::If'];
    expect(otherwise, `${fn}: a conditional statement is there or absent`).toEqual({ Ref: 'AWS::NoValue' });
    return { statement: then, when };
  });
}

function grantsOf(fn: string): string[] {
  const grants = new Set<string>();
  for (const { statement, when } of statementsOf(fn)) {
    // Allow, Action and Resource only: no Deny to reason about, no NotAction or NotResource.
    expect(statement.Effect, fn).toBe('Allow');
    expect(Object.keys(statement).filter((k) => !['Effect', 'Action', 'Resource', 'Condition'].includes(k)), fn).toEqual([]);
    let prefixes: (string | undefined)[] = [undefined];
    if (statement.Condition !== undefined) {
      // The only condition used: a listing limited to key prefixes.
      expect(Object.keys(statement.Condition), fn).toEqual(['StringLike']);
      expect(Object.keys(statement.Condition.StringLike!), fn).toEqual(['s3:prefix']);
      prefixes = list(statement.Condition.StringLike!['s3:prefix']!);
    }
    for (const action of list(statement.Action)) {
      for (const resource of list(statement.Resource)) {
        for (const prefix of prefixes) {
          grants.add(`${action} ${resourceName(resource)}${prefix === undefined ? '' : ` prefix ${prefix}`}${when === undefined ? '' : ` if ${when}`}`);
        }
      }
    }
  }
  return [...grants].sort();
}

describe('function roles', () => {
  it('names every function of the template in the table', () => {
    const lambdas = Object.entries(resources()).filter(([, r]) => r.Type === 'AWS::Lambda::Function').map(([id]) => id.replace(/LambdaFunction$/, ''));
    expect(lambdas.sort()).toEqual([...FUNCTIONS].sort());
  });

  it('gives each function a role of its own, and no role to anything else', () => {
    const roleIds = FUNCTIONS.map(roleIdOf);
    expect(new Set(roleIds).size).toBe(FUNCTIONS.length);
    const roles = Object.entries(resources()).filter(([, r]) => r.Type === 'AWS::IAM::Role').map(([id]) => id);
    expect(roles.sort()).toEqual([...roleIds].sort());
    for (const fn of FUNCTIONS) {
      // Everything a role may do is in its inline policy, where the table below sees it: no managed policies.
      expect(roleOf(fn).ManagedPolicyArns, fn).toBeUndefined();
      expect(roleOf(fn).AssumeRolePolicyDocument.Statement, fn).toEqual([
        { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ]);
    }
  });

  it.each(FUNCTIONS)('grants %s exactly what its code uses', (fn) => {
    expect(grantsOf(fn)).toEqual([...new Set(GRANTS[fn])].sort());
  });

  it('uses no wildcard action, and a wildcard resource only where the action takes no other', () => {
    for (const fn of FUNCTIONS) {
      for (const { statement } of statementsOf(fn)) {
        for (const action of list(statement.Action)) expect(action, fn).toMatch(/^[a-z0-9]+:[A-Za-z]+$/);
        for (const resource of list(statement.Resource).map(resourceName)) {
          if (resource === '*') {
            // Lambda's active tracing: X-Ray's actions have no resource type, so they cannot be narrowed.
            expect(list(statement.Action).sort(), fn).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
          } else if (!resource.startsWith('${') && !resource.startsWith('arn:')) {
            // S3: a bucket, a key prefix (`prefix/*`, the `*` only at the end), or one key.
            expect(resource, fn).toMatch(/^audio-files(-incoming)?(\/([a-z-]+\/)+\*|\/[a-z/-]+\.json)?$/);
          } else {
            expect(resource, fn).not.toContain('*');
          }
        }
        for (const prefix of Object.values(statement.Condition?.StringLike ?? {}).flatMap(list)) expect(prefix, fn).toMatch(/^([a-z-]+\/)+\*$/);
      }
    }
  });

  it('keeps the sensitive grants to the few functions that need them', () => {
    const holders = (grant: string) => FUNCTIONS.filter((fn) => grantsOf(fn).includes(grant)).sort();
    // A recording's body: get-file reads it; processing writes and removes it, and so does a delete.
    expect(holders(`s3:GetObject ${FILES}`)).toEqual(['GetFile']);
    expect(holders(`s3:PutObject ${FILES}`)).toEqual(['ProcessUpload', 'Redrive', 'Sweep']);
    expect(holders(`s3:DeleteObject ${FILES}`)).toEqual(['DeleteFile', 'ProcessUpload', 'Redrive', 'Sweep']);
    // Only a delete removes a manifest. Every function holds the keys (manifests are sealed), so
    // what keeps a body from a reader is the S3 grant above, not the keys.
    expect(holders(`s3:DeleteObject ${MANIFESTS}`)).toEqual(['DeleteFile']);
    expect(holders(parameter('EncryptionKeysParameter'))).toEqual([...FUNCTIONS].sort());
    // Readers open data keys and never make them.
    expect(FUNCTIONS.filter((fn) => !grantsOf(fn).includes(MAKE_KEYS)).sort()).toEqual(['CreatePlaybackLink', 'GetFile', 'GetFileInfo', 'GetFileSize']);
    // The usage totals are the sweep's alone.
    expect(holders('s3:PutObject audio-files/usage/totals.json')).toEqual(['Sweep']);
  });
});
