import { describe, expect, it } from 'vitest';
import { formatSoak, runSoak } from '../soak/soak-run.ts';

/** The soak's own code, short: 60 uploads of 1 KB – 4 MB from 10 clients (`npm run soak` runs 1,000 of up to 20 MB). */
describe('soak, short', () => {
  it('loses, corrupts and times out nothing', async () => {
    const report = await runSoak({ uploads: 60, clients: 10, minBytes: 1000, maxBytes: 4_000_000, settleTimeoutMs: 120_000 });
    process.stdout.write(`[soak] ${formatSoak(report).replaceAll('\n', '\n[soak] ')}\n`);
    expect(report).toMatchObject({ ready: 60, lost: 0, corrupted: 0, rejected: 0, failed: 0, timeouts: 0 });
    expect(Object.keys(report.answers).filter((k) => !['200', '201', '206'].includes(k))).toEqual([]);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
  }, 300_000);
});
