import { afterEach, describe, expect, it } from 'vitest';
import { createEventRelay, type EventRelay } from '../../../scripts/local/event-relay.ts';
import { getFreePort } from '../../../scripts/shared/ports.ts';

/**
 * The door MinIO's webhook knocks on: a bearer token is required, bodies are bounded, and
 * every call is answered at once; anything it can never handle is acknowledged, never left
 * for MinIO to re-send forever in front of every later upload.
 */

let relay: EventRelay | undefined;
afterEach(async () => relay?.stop());

async function door(token = 'events-token', maxBodyBytes?: number) {
  const accepted: unknown[] = [];
  const logged: string[] = [];
  const port = await getFreePort();
  relay = await createEventRelay({
    listen: { host: '127.0.0.1', port },
    token,
    accept: (event) => accepted.push(event),
    log: (line) => logged.push(line),
    ...(maxBodyBytes && { maxBodyBytes }),
  });
  /** `authorization: ''` sends no header at all. */
  const post = (body: string, authorization = `Bearer ${token}`) =>
    fetch(`http://127.0.0.1:${port}/minio-events`, { method: 'POST', body, headers: authorization ? { authorization } : {} });
  return { accepted, logged, post, port };
}

const event = { EventName: 's3:ObjectCreated:Put', Records: [{ eventName: 's3:ObjectCreated:Put' }] };

describe('event relay', () => {
  it('hands a well-formed event to the queue and acknowledges it at once', async () => {
    const { accepted, post } = await door();
    const response = await post(JSON.stringify(event));
    expect(response.status).toBe(200);
    expect(accepted).toEqual([event]);
  });

  it('refuses callers without the token, or with another one, and says why in the log', async () => {
    const { accepted, logged, post } = await door();
    expect((await post(JSON.stringify(event), '')).status).toBe(401);
    expect((await post(JSON.stringify(event), 'Bearer wrong')).status).toBe(401);
    expect((await post(JSON.stringify(event), 'events-token')).status).toBe(401);
    expect(accepted).toEqual([]);
    expect(logged.join('\n')).toMatch(/MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN/);
    expect(logged.join('\n')).not.toContain('events-token');
  });

  it('cuts off a body over the bound without buffering it, and keeps serving', async () => {
    const { accepted, post } = await door('t', 1024);
    const huge = await post(JSON.stringify({ Records: [{ pad: 'x'.repeat(5 * 1024 * 1024) }] })).catch(() => undefined);
    if (huge) expect(huge.status).toBe(413);
    expect(accepted).toEqual([]);
    expect((await post(JSON.stringify(event))).status).toBe(200);
    expect(accepted).toEqual([event]);
  });

  it('acknowledges and drops what it can never handle: a body that is not JSON; answers an empty one', async () => {
    const { accepted, logged, post } = await door();
    expect((await post('{"Records": [')).status).toBe(200);
    expect((await post('')).status).toBe(200);
    expect(accepted).toEqual([]);
    expect(logged.join('\n')).toMatch(/not JSON/);
  });

  it('answers only POST', async () => {
    const { port } = await door();
    expect((await fetch(`http://127.0.0.1:${port}/minio-events`)).status).toBe(405);
  });
});
