import { Logger } from '@aws-lambda-powertools/logger';
import { redactingReplacer } from './redaction.ts';

/** The project's one logger: structured JSON through Powertools, scrubbed by `redactingReplacer`. */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'transcribo-storage',
  jsonReplacerFn: redactingReplacer,
});
