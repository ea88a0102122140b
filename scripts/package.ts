/**
 * `npm run package`: the deployable artifact, without AWS credentials.
 *
 * Bundles each function of functions/ into .build/functions/<name>.mjs (scripts/bundle.ts),
 * then has serverless (osls) package them into .serverless/ with its CloudFormation template.
 * Settings come from this shell and .env, as for `npm start`, and are checked by the same
 * schema; only those a deployment takes as they are pass into the template (lib/config.ts says
 * which). Secrets never do: the functions read them from Parameter Store.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { namesDeployedAs, parseConfig, resolvedSettings } from '../lib/config.ts';
import { bundle } from './bundle.ts';
import { failOnConfigError } from './local/startup-failure.ts';
import { loadDotEnv } from './local/dot-env.ts';

const root = resolve(import.meta.dirname, '..');
const outdir = join(root, '.build', 'functions');

loadDotEnv();
const config = failOnConfigError(() => parseConfig(process.env));

rmSync(join(root, '.build'), { recursive: true, force: true });
const entries = Object.fromEntries(
  readdirSync(join(root, 'functions'))
    .filter((file) => file.endsWith('.ts'))
    .map((file) => [basename(file, '.ts'), join(root, 'functions', file)]),
);
await bundle(entries, outdir);
process.stdout.write(`bundled ${Object.keys(entries).length} functions into ${outdir}\n`);

const passed = new Set<string>(namesDeployedAs('env', 'template'));
const env: NodeJS.ProcessEnv = {};
for (const [name, value] of Object.entries(process.env)) {
  if (!name.startsWith('STORAGE_') || passed.has(name)) env[name] = value;
}
// What the template needs itself (every `resolved` setting: buckets, region, alarm thresholds), with the schema's defaults.
Object.assign(env, resolvedSettings(process.env));
env.TRANSCRIBO_HANDLER_DIR = '.build/functions';
// EventBridge schedules in whole minutes, at least one.
const sweepMinutes = Math.max(1, Math.ceil(config.sweep.intervalSeconds / 60));
env.TRANSCRIBO_SWEEP_SCHEDULE = sweepMinutes === 1 ? 'rate(1 minute)' : `rate(${sweepMinutes} minutes)`;
const result = spawnSync(join(root, 'node_modules', '.bin', 'osls'), ['package', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
