/**
 * Splits the functions' output into lines and sends every CloudWatch EMF line (Powertools'
 * Metrics writes each flush as one `JSON.stringify`d object with an `_aws.CloudWatchMetrics`
 * key, on a line of its own, to stdout) to a file instead of the console: locally they would
 * drown the logs, and `npm run stats` reads them from the file. Everything else passes through.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export type Stream = 'stdout' | 'stderr';

export interface MetricsSink {
  /** Takes a chunk of a stream's output, as it comes (lines may be split anywhere, even inside a character). */
  write(chunk: Buffer | string, stream: Stream): void;
  /** Passes on whatever is still held (the last line had no newline): call when the output ends. */
  flush(): void;
}

/** A held partial line that grows past this is not an EMF line anyone will finish: let it through. */
const MAX_HELD = 1024 * 1024;

export function isEmfLine(line: string): boolean {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') || !trimmed.includes('"_aws"')) return false;
  try {
    const parsed = JSON.parse(trimmed) as { _aws?: { CloudWatchMetrics?: unknown } } | null;
    return Array.isArray(parsed?._aws?.CloudWatchMetrics);
  } catch {
    return false;
  }
}

export function createMetricsSink(options: {
  /** The EMF lines go here, appended. */
  file: string;
  /** Everything else. */
  forward: (text: string, stream: Stream) => void;
  /** Tests use a store of their own; by default, appended to `file`. */
  append?: (lines: string) => void;
}): MetricsSink {
  const append =
    options.append ??
    ((lines: string) => {
      mkdirSync(dirname(options.file), { recursive: true });
      // Synchronous: npm start exits with process.exit, which would drop a pending async write.
      appendFileSync(options.file, lines);
    });
  // `midLine`: the start of the current line was already passed on, so its end is passed on too.
  const state: Record<Stream, { decoder: StringDecoder; held: string; midLine: boolean }> = {
    stdout: { decoder: new StringDecoder('utf8'), held: '', midLine: false },
    stderr: { decoder: new StringDecoder('utf8'), held: '', midLine: false },
  };

  return {
    write(chunk, stream) {
      const s = state[stream];
      const text = s.held + (typeof chunk === 'string' ? chunk : s.decoder.write(chunk));
      const lines = text.split('\n');
      let rest = lines.pop()!;
      let passed = '';
      let emf = '';
      for (const line of lines) {
        if (!s.midLine && isEmfLine(line)) emf += `${line.trim()}\n`;
        else passed += `${line}\n`;
        s.midLine = false;
      }
      // Only a line that may turn out to be JSON is held back; a partial log line shows at once.
      if (rest !== '' && (s.midLine || !rest.trimStart().startsWith('{') || rest.length > MAX_HELD)) {
        passed += rest;
        rest = '';
        s.midLine = true;
      }
      s.held = rest;
      if (emf) append(emf);
      if (passed) options.forward(passed, stream);
    },
    flush() {
      for (const stream of ['stdout', 'stderr'] as const) {
        const s = state[stream];
        const text = s.held + s.decoder.end();
        s.held = '';
        if (text === '') continue;
        if (!s.midLine && isEmfLine(text)) append(`${text.trim()}\n`);
        else options.forward(text, stream);
      }
    },
  };
}
