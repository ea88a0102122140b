/**
 * `npm run redrive`: processes once more the uploads that dead letters name, after what made
 * them fail has been fixed. It invokes the redrive function of the running `npm start` (the
 * same code that is deployed: there, `npx osls invoke -f redrive --stage <stage>`), which reads
 * the dead letters where the configuration keeps them, and prints what became of each file.
 * Exits 1 if a letter had to be kept because its file still fails.
 */
import { loadLocalEnv } from './local/dot-env.ts';

loadLocalEnv();
const port = Number(process.env.TRANSCRIBO_LAMBDA_PORT ?? 3002);
const max = Number(process.argv[2] ?? 100);
const url = `http://127.0.0.1:${port}/2015-03-31/functions/transcribo-storage-dev-redrive/invocations`;

interface Report {
  letters: number;
  kept: number;
  dropped: number;
  outcomes: Array<{ outcome: string; fileId?: string; reason?: string }>;
}

let response: Response;
try {
  response = await fetch(url, { method: 'POST', body: JSON.stringify({ max }) });
} catch {
  process.stderr.write(`redrive: nothing answers on 127.0.0.1:${port}; start the product first (npm start), or set TRANSCRIBO_LAMBDA_PORT\n`);
  process.exit(2);
}
const body = await response.text();
if (!response.ok || response.headers.has('x-amz-function-error')) {
  process.stderr.write(`redrive failed: ${body.slice(0, 500)}\n`);
  process.exit(1);
}
const report = JSON.parse(body) as Report;
for (const o of report.outcomes) console.log(`${o.fileId ?? '(no file)'}: ${o.outcome}${o.reason ? ` (${o.reason})` : ''}`);
console.log(`${report.letters} dead letters read; ${report.letters - report.kept} done with, ${report.kept} kept (their files still fail), ${report.dropped} named no upload`);
process.exit(report.kept > 0 ? 1 : 0);
