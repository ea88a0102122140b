import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, operationLogKeys, perInvocationLogger, withLogKeys } from '../../../lib/observability/logger.ts';

const context = (name: string, requestId: string) =>
  ({ functionName: name, awsRequestId: requestId, functionVersion: '$LATEST', invokedFunctionArn: `arn:${name}`, memoryLimitInMB: '128', getRemainingTimeInMillis: () => 10_000 }) as unknown as Context;

/** A function as the project builds them, whose handler waits for `gate` between two log lines. */
function fn(operation: string, gate: () => Promise<void>) {
  return perInvocationLogger(
    middy<{ pathParameters?: { fileId?: string } }>()
      .use(injectLambdaContext(logger, { resetKeys: true }))
      .use(operationLogKeys<{ pathParameters?: { fileId?: string } }>(operation, (event) => event.pathParameters?.fileId))
      .handler(async () => {
        logger.info(`${operation} starts`);
        await gate();
        logger.info(`${operation} ends`);
      }),
  );
}

let lines: Array<Record<string, unknown>> = [];
beforeEach(() => {
  lines = [];
  logger.setLogLevel('INFO');
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) if (line.startsWith('{')) lines.push(JSON.parse(line));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  logger.setLogLevel('SILENT');
});

describe('logger', () => {
  it('keeps each invocation’s context on its own lines when invocations interleave in one process', async () => {
    let releaseA!: () => void;
    const a = fn('processUpload', () => new Promise((r) => (releaseA = r)));
    const b = fn('getFile', async () => undefined);
    const first = a({}, context('process', 'req-a'));
    await new Promise((r) => setImmediate(r));
    await b({ pathParameters: { fileId: 'file-b' } }, context('get', 'req-b'));
    releaseA();
    await first;
    logger.info('outside any invocation');

    const byMessage = Object.fromEntries(lines.map((l) => [l.message, l]));
    expect(byMessage['processUpload starts']).toMatchObject({ function_request_id: 'req-a', function_name: 'process', operation: 'processUpload' });
    expect(byMessage['processUpload ends']).toMatchObject({ function_request_id: 'req-a', function_name: 'process', operation: 'processUpload' });
    expect(byMessage['processUpload ends']).not.toHaveProperty('fileId');
    expect(byMessage['getFile starts']).toMatchObject({ function_request_id: 'req-b', function_name: 'get', operation: 'getFile', fileId: 'file-b' });
    expect(byMessage['outside any invocation']).not.toHaveProperty('operation');
    expect(byMessage['outside any invocation']).not.toHaveProperty('function_request_id');
  });

  it('gives work done side by side within one invocation its own keys', async () => {
    const handler = perInvocationLogger(
      middy()
        .use(injectLambdaContext(logger, { resetKeys: true }))
        .use(operationLogKeys('sweep'))
        .handler(async () => {
          await Promise.all(
            ['f1', 'f2'].map((fileId, i) =>
              withLogKeys({ fileId }, async () => {
                await new Promise((r) => setTimeout(r, 10 * (2 - i)));
                logger.info('file done');
              }),
            ),
          );
          logger.info('sweep done');
        }),
    );
    await handler({}, context('sweep', 'req-s'));
    expect(lines.map((l) => [l.message, l.fileId, l.operation, l.function_request_id])).toEqual([
      ['file done', 'f2', 'sweep', 'req-s'],
      ['file done', 'f1', 'sweep', 'req-s'],
      ['sweep done', undefined, 'sweep', 'req-s'],
    ]);
  });

  it('still redacts what it is handed', async () => {
    await perInvocationLogger(
      middy()
        .use(injectLambdaContext(logger))
        .handler(async () => logger.info('call', { authorization: 'Bearer abc.def.ghi', url: 'https://x/y?X-Amz-Signature=deadbeef' })),
    )({}, context('f', 'r'));
    expect(JSON.stringify(lines)).not.toMatch(/abc\.def\.ghi|deadbeef/);
  });
});
