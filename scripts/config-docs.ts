/**
 * `npm run config:docs`: writes `.env.example` and the README's configuration table from the
 * settings declared in lib/config.ts, so neither can say a name or default the code does not
 * have. test/scripts/config-docs.test.ts fails while either is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { settingDocs, type Deployed } from '../lib/config.ts';

const root = resolve(import.meta.dirname, '..');
export const README_TABLE_START = '<!-- configuration table: npm run config:docs -->';
export const README_TABLE_END = '<!-- end of configuration table -->';

const DEPLOYED: Record<Deployed, string> = {
  env: 'as packaged',
  resolved: 'as packaged',
  secret: 'Parameter Store',
  template: 'set by the template',
  local: 'not deployed',
};

const plain = (markdown: string) => markdown.replaceAll('`', '');
const sentence = (text: string) => `${text[0]!.toUpperCase()}${text.slice(1)}.`;

/** Every setting, commented out at its default: copied as it is to .env, it changes nothing. */
export function envExample(): string {
  const lines = [
    '# Transcribo storage: every setting, at its default. Nothing here needs changing for a first run:',
    '# `npm start` uses the embedded S3 emulator, or the MinIO that `npm run minio` started, and',
    '# generates local secrets. Copy to .env and uncomment what you change.',
    '# Written by `npm run config:docs` from lib/config.ts; edit the descriptions there.',
  ];
  for (const setting of settingDocs()) {
    lines.push('', `# ${sentence(plain(setting.doc))}`);
    if (setting.defaultValue === undefined && setting.defaultDoc) lines.push(`# Default: ${plain(setting.defaultDoc)}.`);
    lines.push(`# ${setting.name}=${setting.defaultValue ?? ''}`);
  }
  lines.push(
    '',
    '# Local runs only (npm start, npm run minio): the bearer token MinIO\'s webhook must present to',
    '# npm start\'s event relay. Unset, one is generated into .local/dev-secrets.json and used by both.',
    '# TRANSCRIBO_EVENTS_TOKEN=',
  );
  return `${lines.join('\n')}\n`;
}

export function readmeTable(): string {
  const rows = settingDocs().map((s) => {
    const fallback = s.defaultDoc ?? (s.defaultValue === undefined ? 'unset' : `\`${s.defaultValue}\``);
    return `| \`${s.name}\` | ${fallback} | ${DEPLOYED[s.deployed]} | ${s.doc} |`;
  });
  return [README_TABLE_START, '| variable | default | deployed | meaning |', '|---|---|---|---|', ...rows, README_TABLE_END].join('\n');
}

export function readmeWithTable(readme: string): string {
  const start = readme.indexOf(README_TABLE_START);
  const end = readme.indexOf(README_TABLE_END);
  if (start < 0 || end < start) throw new Error(`README.md has no "${README_TABLE_START}" … "${README_TABLE_END}" block`);
  return readme.slice(0, start) + readmeTable() + readme.slice(end + README_TABLE_END.length);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(resolve(root, '.env.example'), envExample());
  const readme = resolve(root, 'README.md');
  writeFileSync(readme, readmeWithTable(readFileSync(readme, 'utf8')));
  process.stdout.write('wrote .env.example and the configuration table of README.md\n');
}
