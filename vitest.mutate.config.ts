import { defineConfig } from 'vitest/config';

/**
 * The unit tests of the pure-logic modules, for `npm run mutate` (stryker.config.json): what
 * Stryker runs against each mutant. No MinIO, no npm start: each run takes a second or two.
 */
export default defineConfig({
  test: {
    include: [
      'test/lib/crypto/frame-format.test.ts',
      'test/lib/crypto/keyring.test.ts',
      'test/lib/crypto/manifest-seal.test.ts',
      'test/lib/auth/caller-token.test.ts',
      'test/lib/byte-range.test.ts',
      'test/lib/http/error-response.test.ts',
      'test/lib/http/content-response.test.ts',
      'test/lib/observability/redaction.test.ts',
      'test/lib/upload/upload-request.test.ts',
      'test/lib/processing/event-records.test.ts',
      'test/lib/processing/upload-inspector.test.ts',
      'test/lib/processing/audio-check.test.ts',
      'test/lib/audio-formats.test.ts',
    ],
    pool: 'forks',
    testTimeout: 30_000,
    env: { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT' },
  },
});
