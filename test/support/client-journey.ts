import { createHash } from 'node:crypto';

/**
 * What a transcription app does with a recording, with nothing but fetch: ask for an upload,
 * send the bytes straight to the bucket with the presigned form, wait for the file to be
 * ready, read it back by ranges (as a player would) and compare. No test framework here: the
 * soak script runs the same steps.
 */

export interface ApiError extends Error {
  status: number;
  body: string;
}

/** Every answer of the API a journey saw, by status and error type (or `unreachable`). */
export type Answers = Map<string, number>;

export class Client {
  readonly answers: Answers = new Map();
  readonly #api: () => string;
  readonly #token: string;

  /** `api` is asked each time: the product may come back on another port after a restart. */
  constructor(api: string | (() => string), token: string) {
    this.#api = typeof api === 'string' ? () => api : api;
    this.#token = token;
  }

  async call(method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, ...init.headers };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.#api()}${path}`, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      this.#count('unreachable');
      throw error;
    }
    let kind = String(response.status);
    if (response.headers.get('content-type')?.startsWith('application/json')) {
      const text = await response.clone().text();
      const type = /"type":"([A-Za-z]+)"/.exec(text)?.[1];
      // serverless-offline's own failure shape must never reach a client.
      if (/"errorMessage"|"stackTrace"/.test(text)) kind += ' leaked-function-error';
      else if (type && response.status >= 400) kind += ` ${type}`;
    }
    this.#count(kind);
    return response;
  }

  async json<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.call(method, path, { body });
    const text = await response.text();
    if (!response.ok) throw Object.assign(new Error(`${method} ${path} → ${response.status} ${text.slice(0, 300)}`), { status: response.status, body: text });
    return JSON.parse(text) as T;
  }

  /** Asks for an upload of `bytes` (POST /files) and returns the API's answer. */
  create(bytes: Buffer, filename = 'recording.wav', contentType = 'audio/wav'): Promise<CreatedUpload> {
    return this.json('POST', '/files', { filename, contentType, size: bytes.length, sha256: sha256(bytes) });
  }

  /** Creates the file and sends its bytes to the bucket; returns when the bucket has them. */
  async upload(bytes: Buffer, filename = 'recording.wav', contentType = 'audio/wav'): Promise<{ fileId: string; uploadedAt: number }> {
    const created = await this.create(bytes, filename, contentType);
    await sendToBucket(created, bytes, filename);
    return { fileId: created.fileId, uploadedAt: Date.now() };
  }

  /**
   * Polls the file until it leaves awaiting_upload/processing. While the product is down or
   * restarting, polling goes on; `seen` collects every status observed.
   */
  async settled(fileId: string, options: { timeoutMs: number; pollMs?: number; seen?: string[] }): Promise<any> {
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      let info: any;
      try {
        info = await this.json('GET', `/files/${fileId}`);
      } catch {
        info = undefined;
      }
      if (info) {
        options.seen?.push(info.status);
        if (info.status !== 'awaiting_upload' && info.status !== 'processing') return info;
      }
      if (Date.now() > deadline) throw new Error(`file ${fileId} not settled after ${options.timeoutMs} ms (last: ${info?.status ?? 'no answer'})`);
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 200));
    }
  }

  /** Reads the whole file back by ranges of `chunk` bytes and returns its SHA-256. */
  async readBack(fileId: string, size: number, chunk = 4 * 1024 * 1024): Promise<string> {
    const hash = createHash('sha256');
    for (let start = 0; start < size; start += chunk) {
      const end = Math.min(size, start + chunk) - 1;
      const response = await this.call('GET', `/files/${fileId}/content`, { headers: { range: `bytes=${start}-${end}` } });
      if (response.status !== 206) throw new Error(`range ${start}-${end} of ${fileId} → ${response.status} ${(await response.text()).slice(0, 200)}`);
      const part = Buffer.from(await response.arrayBuffer());
      if (part.length !== end - start + 1) throw new Error(`range ${start}-${end} of ${fileId} gave ${part.length} bytes`);
      hash.update(part);
    }
    return hash.digest('hex');
  }

  #count(kind: string): void {
    this.answers.set(kind, (this.answers.get(kind) ?? 0) + 1);
  }
}

export interface CreatedUpload {
  fileId: string;
  upload: { url: string; fields: Record<string, string> };
}

/** Sends the bytes straight to the bucket with the presigned form, as a browser would. */
export async function sendToBucket(created: CreatedUpload, bytes: Buffer, filename = 'recording.wav'): Promise<void> {
  const form = new FormData();
  for (const [name, value] of Object.entries(created.upload.fields)) form.append(name, value);
  form.append('file', new Blob([bytes]), filename);
  const sent = await fetch(created.upload.url, { method: 'POST', body: form, signal: AbortSignal.timeout(120_000) });
  if (!sent.ok) throw new Error(`the bucket refused the upload: ${sent.status} ${(await sent.text()).slice(0, 200)}`);
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
