/**
 * `npm run stats [file]`: the numbers of a local run, read from the EMF lines `npm start` kept in
 * .local/metrics.jsonl (or the file given). The work is in local/metrics-stats.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { localDirectory } from './local/dev-secrets.ts';
import { formatStats, parseEmf, summarize } from './local/metrics-stats.ts';

const file = process.argv[2] ? resolve(process.argv[2]) : join(localDirectory(), 'metrics.jsonl');
if (!existsSync(file)) {
  process.stderr.write(`[transcribo] no metrics at ${file}: npm start writes them there while it runs (or name a file: npm run stats -- <file>)\n`);
  process.exit(1);
}
process.stdout.write(`${formatStats(summarize(parseEmf(readFileSync(file, 'utf8'))), file)}\n`);
