import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { httpFunction, json, TIMEOUT_MARGIN_MS } from '../../../lib/http/http-function.ts';
import { signBearerToken } from '../../../scripts/local/dev-token.ts';
import { expectErrorBody } from '../../support/api-client.ts';
import { invoke } from '../../support/handlers.ts';
import { apiEvent, lambdaContext } from '../../support/lambda-events.ts';

/** The shared HTTP plumbing: a function about to run out of time answers the catalogue's 504 itself. */

const secret = randomBytes(32).toString('hex');
beforeAll(() => {
  process.env.STORAGE_AUTH_JWT_SECRET = secret;
  process.env.STORAGE_ENCRYPTION_KEYS = `k1:${randomBytes(32).toString('base64')}`;
});

describe('httpFunction', () => {
  it('answers 504 StorageTimeoutError just before the function would time out, not the platform', async () => {
    const slow = httpFunction('slowOperation', () => new Promise((resolve) => setTimeout(() => resolve(json(200, { late: true })), 5_000)));
    const token = await signBearerToken(secret, 'someone');
    const started = Date.now();
    const context = { ...lambdaContext(), getRemainingTimeInMillis: () => TIMEOUT_MARGIN_MS + 200 };
    const reply = await (slow as unknown as (e: unknown, c: unknown) => Promise<any>)(apiEvent({ method: 'GET', path: '/x', token }), context);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(reply.statusCode).toBe(504);
    const body = JSON.parse(reply.body);
    expectErrorBody(body, 'StorageTimeoutError');
    expect(body.error.operation).toBe('slowOperation');
  });

  it('leaves a function that finishes in time alone', async () => {
    const quick = httpFunction('quickOperation', async () => json(200, { done: true }));
    const reply = await invoke(quick, apiEvent({ method: 'GET', path: '/x', token: await signBearerToken(secret, 'someone') }));
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ done: true });
  });
});
