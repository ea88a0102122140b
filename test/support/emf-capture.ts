import { vi } from 'vitest';

/**
 * The EMF lines Powertools writes. Its Console holds process.stdout and calls its `write`, so a
 * spy there sees every line. Test files that use this set POWERTOOLS_METRICS_DISABLED=false in
 * `vi.hoisted`, before the metrics module is imported (vitest.config.ts turns metrics off).
 */
export interface EmfLine {
  dimensions: string[][];
  names: string[];
  record: Record<string, unknown>;
}

export function captureEmf() {
  const lines: EmfLine[] = [];
  const original = process.stdout.write.bind(process.stdout);
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    let handled = false;
    for (const line of text.split('\n')) {
      if (!line.startsWith('{"_aws"')) continue;
      const record = JSON.parse(line) as Record<string, any>;
      const definition = record._aws.CloudWatchMetrics[0];
      lines.push({ dimensions: definition.Dimensions, names: definition.Metrics.map((m: { Name: string }) => m.Name), record });
      handled = true;
    }
    return handled ? true : (original as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write);
  /** Values of `name` in lines whose one dimension set is exactly [service, ...dims] with these values. */
  const values = (name: string, dims: Record<string, string> = {}): number[] =>
    lines
      .filter((l) => l.names.includes(name))
      .filter((l) => {
        const set = [...(l.dimensions[0] ?? [])].sort();
        const want = ['service', ...Object.keys(dims)].sort();
        return JSON.stringify(set) === JSON.stringify(want) && Object.entries(dims).every(([k, v]) => l.record[k] === v);
      })
      .flatMap((l) => ([] as number[]).concat(l.record[name] as number | number[]));
  const sum = (name: string, dims: Record<string, string> = {}) => values(name, dims).reduce((a, b) => a + b, 0);
  return { lines, values, sum, clear: () => void lines.splice(0), restore: () => spy.mockRestore() };
}
