/**
 * `npm run try -- <recording>`: the whole client journey against a running `npm start`,
 * as a web or mobile app would make it: ask for an upload, send the file straight to the
 * bucket with the presigned form, wait until it is processed, read it back and compare.
 * TRANSCRIBO_API (default http://127.0.0.1:3000) and TOKEN (printed by npm start) say where and who.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';

const TYPES: Record<string, string> = { '.wav': 'audio/wav', '.mp3': 'audio/mpeg', '.m4a': 'audio/mp4' };
const [file] = process.argv.slice(2);
const api = process.env.TRANSCRIBO_API ?? 'http://127.0.0.1:3000';
const token = process.env.TOKEN;
if (!file || !token) {
  process.stderr.write('usage: TOKEN=<token printed by npm start> npm run try -- <recording.wav|.mp3|.m4a>\n');
  process.exit(2);
}

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = response.headers.get('content-type')?.startsWith('application/json') ? await response.json() : Buffer.from(await response.arrayBuffer());
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(payload)}`);
  return payload;
}

const bytes = await readFile(file);
const sha256 = createHash('sha256').update(bytes).digest('hex');
const created = await call('POST', '/files', {
  filename: basename(file),
  contentType: TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
  size: bytes.length,
  sha256,
});
console.log(`created ${created.fileId}; uploading ${bytes.length} bytes to ${new URL(created.upload.url).origin}`);

const form = new FormData();
for (const [name, value] of Object.entries(created.upload.fields as Record<string, string>)) form.append(name, value);
form.append('file', new Blob([bytes]), basename(file));
const sent = await fetch(created.upload.url, { method: 'POST', body: form });
if (!sent.ok) throw new Error(`the bucket refused the upload: ${sent.status} ${await sent.text()}`);

let info = await call('GET', `/files/${created.fileId}`);
for (let i = 0; i < 240 && (info.status === 'awaiting_upload' || info.status === 'processing'); i++) {
  await new Promise((resolve) => setTimeout(resolve, 250));
  info = await call('GET', `/files/${created.fileId}`);
}
console.log(`status ${info.status}${info.reason ? `: ${info.reason}` : ''}`);
if (info.status !== 'ready') process.exit(1);

const back: Buffer | undefined = await call('GET', `/files/${created.fileId}/content`).catch((error: Error) => {
  if (!error.message.includes('→ 413')) throw error;
  console.log('stored; too large to read back in one response (ask for byte ranges with Range: bytes=a-b)');
  return undefined;
});
if (back) console.log(`read back ${back.length} bytes: ${createHash('sha256').update(back).digest('hex') === sha256 ? 'identical' : 'DIFFERENT'}`);
console.log(`curl -H "Authorization: Bearer $TOKEN" ${api}/files/${created.fileId}`);
