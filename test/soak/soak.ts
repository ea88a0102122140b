/**
 * `npm run soak`: 1,000 uploads of mixed sizes (1 KB – 20 MB) from 20 concurrent clients through
 * `npm start` on a MinIO of its own, every file read back and compared (soak-run.ts).
 * SOAK_UPLOADS, SOAK_CLIENTS and SOAK_MAX_MB change the size of the run. Exits 1 unless nothing
 * was lost, corrupted, rejected, failed or timed out. Ends with `npm run stats` of the run's metrics.
 */
import { existsSync, readFileSync } from 'node:fs';
import { formatStats, parseEmf, summarize } from '../../scripts/local/metrics-stats.ts';
import { formatSoak, runSoak } from './soak-run.ts';

const uploads = Number(process.env.SOAK_UPLOADS ?? 1000);
const clients = Number(process.env.SOAK_CLIENTS ?? 20);
const maxBytes = Number(process.env.SOAK_MAX_MB ?? 20) * 1_000_000;
process.stdout.write(`soak: ${uploads} uploads of 1 KB – ${maxBytes / 1e6} MB from ${clients} clients\n`);
const report = await runSoak({
  uploads,
  clients,
  minBytes: 1000,
  maxBytes,
  settleTimeoutMs: 300_000,
  progress: (line) => process.stdout.write(`  ${line}\n`),
});
process.stdout.write(`${formatSoak(report)}\n`);
// What npm start measured meanwhile, as `npm run stats` prints it.
if (existsSync(report.metricsFile)) process.stdout.write(`\n${formatStats(summarize(parseEmf(readFileSync(report.metricsFile, 'utf8'))), report.metricsFile)}\n`);
const clean = report.lost + report.corrupted + report.rejected + report.failed + report.timeouts === 0 && report.ready === uploads;
process.exit(clean ? 0 : 1);
