/**
 * `npm run try [-- <recording>]`: the whole client journey against a running `npm start`,
 * as a web or mobile app would make it: ask for an upload, send the file straight to the
 * bucket with the presigned form, wait until it is processed, read it back and compare.
 * Without a file it sends a generated ten-second WAV. TRANSCRIBO_API (default: npm start's
 * address, http://127.0.0.1:$TRANSCRIBO_HTTP_PORT) and TOKEN (printed by npm start; unset, one
 * is signed with the local secret npm start uses) say where and who. Read back by ranges.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { localBearerToken } from './local/dev-token.ts';
import { loadLocalEnv } from './local/dot-env.ts';

const TYPES: Record<string, string> = { '.wav': 'audio/wav', '.mp3': 'audio/mpeg', '.m4a': 'audio/mp4' };
loadLocalEnv();
const [file] = process.argv.slice(2);
const api = process.env.TRANSCRIBO_API || `http://127.0.0.1:${process.env.TRANSCRIBO_HTTP_PORT || 3000}`;
/** A range well under the API's largest response (STORAGE_MAX_RESPONSE_BYTES, 4 MiB by default). */
const RANGE_BYTES = 1024 * 1024;
/** What went wrong, in one line, and exit 1: this is a person's command, not a library. */
function fail(line: string): never {
  process.stderr.write(`npm run try: ${line}\n`);
  process.exit(1);
}
process.on('uncaughtException', (error) => {
  const code = (error.cause as { code?: string } | undefined)?.code;
  if (error.message === 'fetch failed') fail(`cannot reach ${api}${code ? ` (${code})` : ''}: is npm start running there? (TRANSCRIBO_HTTP_PORT, TRANSCRIBO_API)`);
  fail(error.message.split('\n')[0]!);
});
process.on('unhandledRejection', (error) => fail((error as Error)?.message?.split('\n')[0] ?? String(error)));
if (!process.env.TOKEN && process.env.STORAGE_AUTH_JWKS_URL) {
  fail('STORAGE_AUTH_JWKS_URL is set, so callers need a token from that identity provider: set TOKEN to one.');
}
const token = process.env.TOKEN || (await localBearerToken('dev-user', '1h'));

/** Ten seconds of a 440 Hz tone, 16 kHz mono 16-bit PCM: a real WAV any player opens. */
function toneWav(seconds = 10, rate = 16_000): Buffer {
  const samples = seconds * rate;
  const out = Buffer.alloc(44 + samples * 2);
  out.write('RIFF', 0);
  out.writeUInt32LE(36 + samples * 2, 4);
  out.write('WAVEfmt ', 8);
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(rate, 24);
  out.writeUInt32LE(rate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36);
  out.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) out.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return out;
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

const bytes = file ? await readFile(file).catch(() => fail(`cannot read ${file}`)) : toneWav();
const name = file ? basename(file) : 'tone.wav';
const sha256 = createHash('sha256').update(bytes).digest('hex');
const created = await call('POST', '/files', {
  filename: name,
  contentType: TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream',
  size: bytes.length,
  sha256,
});
console.log(`created ${created.fileId}; uploading ${bytes.length} bytes to ${new URL(created.upload.url).origin}`);

const form = new FormData();
for (const [name, value] of Object.entries(created.upload.fields as Record<string, string>)) form.append(name, value);
form.append('file', new Blob([bytes]), name);
const sent = await fetch(created.upload.url, { method: 'POST', body: form });
if (!sent.ok) throw new Error(`the bucket refused the upload: ${sent.status} ${await sent.text()}`);

let info = await call('GET', `/files/${created.fileId}`);
for (let i = 0; i < 240 && (info.status === 'awaiting_upload' || info.status === 'processing'); i++) {
  await new Promise((resolve) => setTimeout(resolve, 250));
  info = await call('GET', `/files/${created.fileId}`);
}
console.log(`status ${info.status}${info.reason ? `: ${info.reason}` : ''}`);
if (info.status !== 'ready') process.exit(1);

// Read back the way a player does: by ranges.
const hash = createHash('sha256');
for (let start = 0; start < bytes.length; start += RANGE_BYTES) {
  const end = Math.min(bytes.length, start + RANGE_BYTES) - 1;
  const response = await fetch(`${api}/files/${created.fileId}/content`, { headers: { authorization: `Bearer ${token}`, range: `bytes=${start}-${end}` } });
  if (response.status !== 206) throw new Error(`GET content bytes=${start}-${end} → ${response.status} ${await response.text()}`);
  hash.update(Buffer.from(await response.arrayBuffer()));
}
const same = hash.digest('hex') === sha256;
console.log(`read back ${bytes.length} bytes by ranges: ${same ? 'identical' : 'DIFFERENT'}`);
if (!same) process.exit(1);
// Pasteable as it is: the token this run used, unless it came from the shell's TOKEN.
const bearer = process.env.TOKEN ? '$TOKEN' : token;
console.log(`curl -s -H "Authorization: Bearer ${bearer}" ${api}/files/${created.fileId}`);
