/**
 * `npm run package`: the deployable artifact, without AWS credentials.
 *
 * Bundles each function of functions/ into .build/functions/<name>.mjs (scripts/bundle.ts),
 * then has serverless (osls) package them into .serverless/ with its CloudFormation template.
 * Only non-secret settings pass from this shell into the template; secrets and keys are
 * CloudFormation parameters, and the deployed functions use S3 through their IAM roles.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { SETTINGS } from '../lib/config.ts';
import { bundle } from './bundle.ts';

const root = resolve(import.meta.dirname, '..');
const outdir = join(root, '.build', 'functions');

const PASSED_THROUGH = [
  'STORAGE_REGION',
  'STORAGE_BUCKET',
  'STORAGE_INCOMING_BUCKET',
  'STORAGE_ENCRYPTION_ENABLED',
  'STORAGE_MAX_FILE_SIZE',
  'STORAGE_ALLOWED_EXTENSIONS',
  'STORAGE_UPLOAD_URL_TTL_SECONDS',
  'STORAGE_MULTIPART_UPLOAD_TTL_SECONDS',
  'STORAGE_MAX_RESPONSE_BYTES',
  'STORAGE_PLAYBACK_LINK_TTL_SECONDS',
  'STORAGE_PROCESSING_MAX_ATTEMPTS',
  'STORAGE_PROCESSING_LEASE_SECONDS',
  'STORAGE_SWEEP_INTERVAL_SECONDS',
  'STORAGE_UPLOAD_GRACE_SECONDS',
];

rmSync(join(root, '.build'), { recursive: true, force: true });
const entries = Object.fromEntries(
  readdirSync(join(root, 'functions'))
    .filter((file) => file.endsWith('.ts'))
    .map((file) => [basename(file, '.ts'), join(root, 'functions', file)]),
);
await bundle(entries, outdir);
process.stdout.write(`bundled ${Object.keys(entries).length} functions into ${outdir}\n`);

const env: NodeJS.ProcessEnv = {};
for (const [name, value] of Object.entries(process.env)) {
  if (!name.startsWith('STORAGE_') || PASSED_THROUGH.includes(name)) env[name] = value;
}
env.TRANSCRIBO_HANDLER_DIR = '.build/functions';
// EventBridge schedules in whole minutes, at least one.
const sweepMinutes = Math.max(1, Math.ceil(SETTINGS.STORAGE_SWEEP_INTERVAL_SECONDS.parse(process.env.STORAGE_SWEEP_INTERVAL_SECONDS || undefined) / 60));
env.TRANSCRIBO_SWEEP_SCHEDULE = sweepMinutes === 1 ? 'rate(1 minute)' : `rate(${sweepMinutes} minutes)`;
const result = spawnSync(join(root, 'node_modules', '.bin', 'osls'), ['package', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
