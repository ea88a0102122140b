import type { InspectionResult, UploadInspector } from '../../lib/processing/upload-inspector.ts';

/**
 * Drives an inspector as lib/processing/seal-recording.ts does: each chunk inspected (waiting
 * when the parser is behind) before it is passed on, the whole checked at the end, the parser
 * stopped on a refusal.
 */
export async function runInspector(
  inspector: UploadInspector,
  source: Iterable<Buffer> | AsyncIterable<Buffer>,
  pass?: (chunk: Buffer) => void | Promise<void>,
): Promise<InspectionResult> {
  try {
    for await (const chunk of source) {
      const behind = inspector.write(chunk);
      if (behind) await behind;
      await pass?.(chunk);
    }
    return await inspector.end();
  } catch (error) {
    inspector.abort();
    throw error;
  }
}
