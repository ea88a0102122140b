import { describe, expect, it } from 'vitest';
import { createEventQueue, type InvokeResult } from '../../../scripts/local/event-queue.ts';

/** The local stand-in for Lambda's asynchronous invocation: bounded concurrency, retries, dead letters. */

function harness(answers: (event: unknown, call: number) => InvokeResult | Promise<InvokeResult>, concurrency = 2) {
  const calls: unknown[] = [];
  const results: unknown[] = [];
  const letters: Array<{ event: unknown; attempts: number; error: { errorMessage: string } }> = [];
  let running = 0;
  let peak = 0;
  const queue = createEventQueue({
    invoke: async (event) => {
      calls.push(event);
      running++;
      peak = Math.max(peak, running);
      try {
        return await answers(event, calls.length);
      } finally {
        running--;
      }
    },
    concurrency,
    retryDelaysMs: [10, 20],
    onResult: (_event, payload) => results.push(payload),
    deadLetter: async (event, error, attempts) => {
      letters.push({ event, error, attempts });
    },
    log: () => undefined,
  });
  return { queue, calls, results, letters, peak: () => peak };
}

const ok = (payload: unknown): InvokeResult => ({ ok: true, payload });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('event queue', () => {
  it('runs at most `concurrency` invocations at once and runs them all', async () => {
    const h = harness(async (event) => {
      await sleep(5);
      return ok(event);
    }, 3);
    for (let i = 0; i < 20; i++) h.queue.accept(i);
    await h.queue.drained();
    expect(h.peak()).toBe(3);
    expect([...(h.results as number[])].sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    expect(h.queue.depth).toBe(0);
  });

  it('retries a failed invocation after each delay, then files a dead letter with the attempts', async () => {
    const h = harness(() => ({ ok: false, unavailable: false, message: 'StorageConnectionError: unreachable' }));
    h.queue.accept('e');
    await h.queue.drained();
    expect(h.calls).toEqual(['e', 'e', 'e']);
    expect(h.letters).toEqual([{ event: 'e', attempts: 3, error: { errorType: 'RetriesExhausted', errorMessage: 'StorageConnectionError: unreachable' } }]);
  });

  it('stops retrying once an attempt succeeds', async () => {
    const h = harness((_event, call) => (call < 2 ? { ok: false, unavailable: false, message: 'boom' } : ok('done')));
    h.queue.accept('e');
    await h.queue.drained();
    expect(h.calls).toHaveLength(2);
    expect(h.letters).toEqual([]);
    expect(h.results).toEqual(['done']);
  });

  it('does not count the functions being down against an event: it waits for them', async () => {
    const h = harness((_event, call) => (call <= 4 ? { ok: false, unavailable: true, message: 'down' } : ok('done')));
    h.queue.accept('e');
    await h.queue.drained();
    expect(h.calls).toHaveLength(5);
    expect(h.letters).toEqual([]);
  }, 10_000);
});
