import type { Transform } from 'node:stream';

/**
 * Adds up the time a transform spends in its own synchronous work (for the encryption-time
 * metric). Cipher work in Node is synchronous inside `_transform`, so this measures the
 * crypto and nothing of the I/O around it.
 */
export function timeTransform(stream: Transform): { elapsedMs: () => number } {
  let elapsed = 0;
  const wrap = (name: '_transform' | '_flush') => {
    const original = stream[name] as ((...args: unknown[]) => void) | undefined;
    if (typeof original !== 'function') return;
    (stream as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const started = performance.now();
      try {
        original.apply(stream, args);
      } finally {
        elapsed += performance.now() - started;
      }
    };
  };
  wrap('_transform');
  wrap('_flush');
  return { elapsedMs: () => elapsed };
}
