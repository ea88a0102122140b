/**
 * What Lambda does with an asynchronous invocation (an S3 notification), done locally for the
 * events `npm start` receives:
 *
 * - the event is accepted at once and queued, so the storage server's delivery never waits for
 *   processing (MinIO delivers webhook events one at a time, in order: an event held open there
 *   holds up every upload behind it);
 * - at most `concurrency` invocations run at once (processing is CPU-bound);
 * - an invocation that fails (the function threw, timed out or crashed) is tried again after
 *   each of `retryDelaysMs`, and after the last one the event becomes a dead letter, as Lambda's
 *   on-failure destination would make it;
 * - while the functions are not running (starting, restarting) nothing is counted as a failure:
 *   events wait for them.
 *
 * The queue is memory only. An event accepted and then lost with the process is not lost to the
 * product: its upload stays in the incoming bucket, where the sweep finds it.
 */

export type InvokeResult = { ok: true; payload: unknown } | { ok: false; unavailable: boolean; message: string };

export interface EventQueue {
  accept(event: unknown): void;
  /** Events waiting or running. */
  readonly depth: number;
  /** Resolves once nothing is waiting or running. */
  drained(): Promise<void>;
  stop(): void;
}

interface Entry {
  event: unknown;
  failures: number;
}

export function createEventQueue(options: {
  invoke: (event: unknown) => Promise<InvokeResult>;
  concurrency: number;
  retryDelaysMs: readonly number[];
  onResult: (event: unknown, payload: unknown) => void;
  deadLetter: (event: unknown, error: { errorType: string; errorMessage: string }, attempts: number) => Promise<void>;
  log: (line: string) => void;
}): EventQueue {
  const waiting: Entry[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let running = 0;
  let delayed = 0;
  let stopped = false;
  let idle: Array<() => void> = [];

  const later = (ms: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      work();
    }, ms);
    timers.add(timer);
  };

  const settleIfIdle = () => {
    if (waiting.length === 0 && running === 0 && delayed === 0) {
      for (const wake of idle.splice(0)) wake();
    }
  };

  const pump = () => {
    while (!stopped && running < options.concurrency && waiting.length > 0) {
      const entry = waiting.shift()!;
      running++;
      void run(entry).finally(() => {
        running--;
        pump();
        settleIfIdle();
      });
    }
  };

  const run = async (entry: Entry): Promise<void> => {
    const result = await options.invoke(entry.event);
    if (result.ok) {
      options.onResult(entry.event, result.payload);
      return;
    }
    if (result.unavailable) {
      // The functions are down: wait for them without counting it against the event.
      delayed++;
      later(1000, () => {
        delayed--;
        waiting.unshift(entry);
        pump();
      });
      return;
    }
    const delay = options.retryDelaysMs[entry.failures];
    entry.failures++;
    if (delay !== undefined) {
      options.log(`processing failed (${result.message}); retrying in ${delay / 1000} s`);
      delayed++;
      later(delay, () => {
        delayed--;
        waiting.push(entry);
        pump();
      });
      return;
    }
    options.log(`processing failed ${entry.failures} times (${result.message}); the event becomes a dead letter`);
    await options
      .deadLetter(entry.event, { errorType: 'RetriesExhausted', errorMessage: result.message }, entry.failures)
      .catch((error: unknown) => options.log(`could not file the dead letter (${(error as Error).message}); the sweep will find the upload`));
  };

  return {
    accept(event) {
      waiting.push({ event, failures: 0 });
      pump();
    },
    get depth() {
      return waiting.length + running + delayed;
    },
    drained() {
      return new Promise((resolve) => {
        idle.push(resolve);
        settleIfIdle();
      });
    },
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      idle = [];
    },
  };
}
