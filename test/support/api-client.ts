import { expect } from 'vitest';

/** A transcription app's backend or web client talking to the HTTP API with plain fetch. */
export class ApiClient {
  readonly base: string;
  readonly token: string | undefined;

  constructor(base: string, token?: string) {
    this.base = base;
    this.token = token;
  }

  as(token: string | undefined): ApiClient {
    return new ApiClient(this.base, token);
  }

  request(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${this.base}${path}`, { method, headers, body: init.body });
  }

  async create(body: Record<string, unknown>): Promise<any> {
    const response = await this.request('POST', '/files', { body: JSON.stringify(body) });
    expect(response.status, await response.clone().text()).toBe(201);
    return response.json();
  }

  async info(fileId: string): Promise<any> {
    return (await this.request('GET', `/files/${fileId}`)).json();
  }

  /** Polls the file's info until its status leaves `awaiting_upload`/`processing`. */
  async settled(fileId: string, timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.info(fileId);
      if (info.status !== 'awaiting_upload' && info.status !== 'processing') return info;
      if (Date.now() > deadline) throw new Error(`file ${fileId} still ${info.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** What an API error body must look like, whatever the error. */
export function expectErrorBody(body: any, type: string): void {
  expect(body.error.type).toBe(type);
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.operation).toBe('string');
  expect(Date.parse(body.error.timestamp)).not.toBeNaN();
  expect(body.error.requestId).toBeTruthy();
  expect(JSON.stringify(body)).not.toMatch(/stack|at [A-Za-z]+ \(|STORAGE_SECRET|X-Amz-Signature/);
}
