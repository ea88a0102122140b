import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sha256 } from '../support/client-journey.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';
import { processTreeRssMb } from '../support/running-product.ts';

/**
 * `npm start` under the load that made it collapse (issue 6): 50 clients at once, 40 uploading
 * 200 KB and 10 uploading 10 MB, each waiting for its file and reading it back, then 200
 * concurrent reads of file info. Every request must be answered, with its own status, and the
 * process tree's memory must stay bounded: the same load again must not need much more. Then the functions' process is killed under load: requests in flight get the
 * catalogue's error, the functions come back, and later requests are served.
 */

const MB = 1024 * 1024;
let stack: IsolatedStack;
let client: Client;

beforeAll(async () => {
  stack = await startIsolatedStack({ STORAGE_MAX_FILE_SIZE: String(16 * MB) });
  client = new Client(() => stack.product.api, await stack.token('load'));
}, 180_000);
afterAll(() => stack?.close());

function sampleRss(): { stop(): number } {
  let peak = processTreeRssMb(stack.product.pid);
  const timer = setInterval(() => (peak = Math.max(peak, processTreeRssMb(stack.product.pid))), 200);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

async function round(): Promise<{ peakMb: number; ms: number }> {
  const sampler = sampleRss();
  const started = Date.now();
  const fileIds = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const bytes = wav(i < 10 ? 10 * MB : 200_000);
      const { fileId } = await client.upload(bytes);
      const info = await client.settled(fileId, { timeoutMs: 120_000 });
      expect(info.status).toBe('ready');
      expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
      return fileId;
    }),
  );
  const infos = await Promise.all(Array.from({ length: 200 }, (_, i) => client.json('GET', `/files/${fileIds[i % fileIds.length]}`)));
  expect(infos.every((info) => info.status === 'ready')).toBe(true);
  return { peakMb: sampler.stop(), ms: Date.now() - started };
}

/** The serverless-offline process npm start runs (a child of it). */
function functionsPid(): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === stack.product.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('osls')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('no serverless-offline process under npm start');
}

describe('npm start under local load', { timeout: 300_000 }, () => {
  it('answers 50 concurrent clients and 200 concurrent reads, twice, in bounded memory', async () => {
    const idleBefore = processTreeRssMb(stack.product.pid);
    const first = await round();
    const second = await round();
    process.stdout.write(
      `[load] RSS of npm start's process tree: idle ${idleBefore.toFixed(0)} MB; ` +
        `round 1 peak ${first.peakMb.toFixed(0)} MB (${first.ms} ms); round 2 peak ${second.peakMb.toFixed(0)} MB (${second.ms} ms)\n`,
    );
    // Every request answered with its own status: no timeout, no 5xx, no leaked function error.
    expect([...client.answers.keys()].sort()).toEqual(['200', '201', '206']);
    // Bounded by the load, not by how long it lasts (npm run soak follows it over 1,000 uploads).
    expect(Math.max(first.peakMb, second.peakMb)).toBeLessThan(1500);
    expect(second.peakMb).toBeLessThan(first.peakMb * 1.4);
    client.answers.clear();
  });

  it('a crash of the functions under load is answered with the catalogue error, and service resumes', async () => {
    const bytes = wav(100_000);
    const { fileId } = await client.upload(bytes);
    await client.settled(fileId, { timeoutMs: 60_000 });
    const statuses: number[] = [];
    const bodies: string[] = [];
    const inFlight = Array.from({ length: 40 }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 25));
      const response = await client.call('GET', `/files/${fileId}/content`, { headers: { range: 'bytes=0-65535' } });
      statuses.push(response.status);
      bodies.push(response.status >= 400 ? await response.text() : '');
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(functionsPid(), 'SIGKILL');
    await Promise.all(inFlight);
    // Served, or refused with the catalogue's error shape: never a connection reset or a stack.
    expect(statuses.every((s) => s === 206 || s === 500 || s === 504)).toBe(true);
    for (const body of bodies.filter(Boolean)) {
      const parsed = JSON.parse(body);
      expect(parsed.error.type).toMatch(/^Storage(Operation|Timeout)Error$/);
      expect(body).not.toMatch(/stack|\/work\/|node_modules/);
    }
    expect(client.answers.get('unreachable')).toBeUndefined();
    expect(stack.product.output()).toMatch(/the functions stopped \(SIGKILL\); starting them again/);
    // And after the restart, everything works again.
    expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
  });
});
