/**
 * Fuzzing the HTTP API (issue 10, point 7): property-based runs (fast-check) over every route of
 * the README's API section — bodies, headers, ids, ranges, tokens, playback links — against
 * `npm start` on a throwaway MinIO of this file's own. For every answer:
 *
 * - never a 5xx for client input (a 503 only as the catalogue's IdentityProviderUnavailableError,
 *   which cannot arise here: no JWKS is configured);
 * - an error body of exactly DESIGN.md's shape, `{"error": {type, message, operation, fileId?,
 *   timestamp, requestId}}`, with a catalogue `type` whose status is the one answered;
 * - nothing in a body or header that the request did not bring itself: no stack, no local path, no
 *   bucket name, access or secret key, encryption key, JWT secret, object-key prefix or MinIO/S3
 *   text (presigned URLs are the one place the incoming bucket and the access key id belong);
 * - the status the README documents for the case, and for reads of the real recordings exactly
 *   the right bytes with the right `Content-Range`, compared slice by slice.
 *
 * Size of the run: FUZZ_RUNS (default 6000) is the total number of generated cases, shared out
 * among the properties by fixed weights (each name in the test list says its count); the default
 * run takes about a minute on two cores and is part of `npm test`. A long run:
 * `FUZZ_RUNS=50000 npx node scripts/with-minio.ts vitest run test/e2e/fuzz.test.ts`; FUZZ_STATS=1
 * prints how the answers were spread over methods and statuses.
 *
 * Seeds: every run draws a random seed. On a failure fast-check prints the counterexample (shrunk)
 * with `{ seed: …, path: "…" }`; replay exactly that case with
 * `FUZZ_SEED=<seed> FUZZ_PATH=<path> npx node scripts/with-minio.ts vitest run test/e2e/fuzz.test.ts -t '<property name>'`.
 * The product's output is written to a file named on stderr when a property fails.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_TYPES, type AudioExtension } from '../../lib/audio-formats.ts';
import { signPlaybackLink } from '../../lib/auth/playback-link.ts';
import * as catalogue from '../../lib/errors/catalogue.ts';
import { StorageError } from '../../lib/errors/catalogue.ts';
import { mp3, wav } from '../support/audio-fixtures.ts';
import { sendUpload } from '../support/http-client.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

// ---------------------------------------------------------------------------------------------
// Run size, seeds

const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 6000);
/** Shares of the runs. A recording's life waits ~3 s for MinIO's event each: few of them. */
const WEIGHTS = { create: 0.17, byId: 0.34, ranges: 0.27, links: 0.08, multipart: 0.1375, deletes: 0.0025 };
const runsOf = (property: keyof typeof WEIGHTS) => Math.max(5, Math.round(TOTAL_RUNS * WEIGHTS[property]));
const replay = {
  ...(process.env.FUZZ_SEED !== undefined && { seed: Number(process.env.FUZZ_SEED) }),
  ...(process.env.FUZZ_PATH !== undefined && { path: process.env.FUZZ_PATH }),
};
/** Generous: a property's runs are sequential HTTP calls, several properties run at once; a recording's life waits for processing. */
const propertyTimeout = (property: keyof typeof WEIGHTS) => 120_000 + runsOf(property) * (property === 'deletes' ? 8_000 : 150);

const MiB = 1024 * 1024;
const MAX_RESPONSE_BYTES = 100_000;
const MAX_FILE_SIZE = 32 * MiB;

// ---------------------------------------------------------------------------------------------
// The stack and its recordings

let stack: IsolatedStack;
let api: URL;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

type FixtureName = 'readyBig' | 'readySmall' | 'rejected' | 'awaitingPost' | 'awaitingPut' | 'multipart' | 'bobReady' | 'deleted';
interface Fixture {
  name: FixtureName;
  id: string;
  owner: 'alice' | 'bob';
  state: 'ready' | 'rejected' | 'awaiting' | 'multipart' | 'deleted';
  method?: 'POST' | 'PUT' | 'MULTIPART';
  bytes?: Buffer;
  size: number;
  filename: string;
  /** The type it is served with. */
  contentType?: string;
}
const fixtures = {} as Record<FixtureName, Fixture>;
const FIXTURE_NAMES: FixtureName[] = ['readyBig', 'readySmall', 'rejected', 'awaitingPost', 'awaitingPut', 'multipart', 'bobReady', 'deleted'];
/** Playback links made by the API itself, by fixture. */
const links = {} as Record<'readyBig' | 'readySmall' | 'bobReady' | 'deleted', string>;

type Who = 'alice' | 'bob' | 'stranger' | 'nobody';
interface AuthCase {
  label: string;
  header: string | undefined;
  who: Who;
}
/** Every variant of the Authorization header (buildAuthCases). */
let authCases: AuthCase[] = [];
const validAuth = (who: 'alice' | 'bob') => authCases.find((a) => a.label === `${who} Bearer`)!.header!;

/** What must never reach a client, with the name a failure reports. */
let secrets: Array<{ name: string; text: string }> = [];
/** What only presigned URLs may carry. */
let presignOnly: Array<{ name: string; text: string }> = [];

async function hs256(payload: Record<string, unknown>, key: Uint8Array, header: Record<string, unknown> = { alg: 'HS256' }): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key);
}
const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
/** A well-signed HMAC token (HS256, or HS512 when the header says so) with any header at all (jose refuses to sign some, such as an unknown `crit`). */
function rawHmac(header: Record<string, unknown>, payload: Record<string, unknown>, key: Uint8Array): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac(header.alg === 'HS512' ? 'sha512' : 'sha256', key).update(input).digest('base64url')}`;
}

/**
 * Every variant of the Authorization header. Each is signed when it is used, with the clock of
 * that moment, so that "expired within the clock skew" stays so however long the run lasts.
 */
async function buildAuthCases(): Promise<AuthCase[]> {
  const key = stack.config.jwtSecret!;
  const otherKey = randomBytes(32);
  const link = (await signPlaybackLink(stack.config.playbackLinks.key!, 'alice', fixtures.readyBig.id, 600)).token;
  const hs = (payload: (now: number) => Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256' }, secret: Uint8Array = key) => () =>
    rawHmac(header, payload(Math.floor(Date.now() / 1000)), secret);
  const life = (now: number) => ({ iat: now, exp: now + 3600 });
  const alice = hs((now) => ({ sub: 'alice', ...life(now) }));
  const bob = hs((now) => ({ sub: 'bob', ...life(now) }));
  const parts = (token: string) => token.split('.') as [string, string, string];
  const variants: Array<[label: string, who: Who, header: () => string | undefined]> = [
    ['alice Bearer', 'alice', () => `Bearer ${alice()}`],
    ['alice lowercase bearer', 'alice', () => `bearer ${alice()}`],
    ['alice BEARER, two spaces', 'alice', () => `BEARER  ${alice()}`],
    ['alice Bearer<tab>', 'alice', () => `Bearer\t${alice()}`],
    ['alice, trailing space', 'alice', () => `Bearer ${alice()} `],
    ['alice with issuer and audience (none configured)', 'alice', () => `Bearer ${hs((now) => ({ sub: 'alice', iss: 'x', aud: 'y', ...life(now) }))()}`],
    ['alice, expired within the clock skew', 'alice', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now - 60, exp: now - 10 }))()}`],
    ['alice, a jku header (ignored with HS256)', 'alice', () => `Bearer ${hs((now) => ({ sub: 'alice', ...life(now) }), { alg: 'HS256', jku: 'http://127.0.0.1:1/jwks', kid: '../../x' })()}`],
    ['bob Bearer', 'bob', () => `Bearer ${bob()}`],
    ['stranger (unicode sub)', 'stranger', () => `Bearer ${hs((now) => ({ sub: 'ålice 🎙', ...life(now) }))()}`],
    ['stranger (sub of 256 characters)', 'stranger', () => `Bearer ${hs((now) => ({ sub: 'a'.repeat(256), ...life(now) }))()}`],
    ['no header', 'nobody', () => undefined],
    ['empty', 'nobody', () => ''],
    ['scheme only', 'nobody', () => 'Bearer'],
    ['scheme and space', 'nobody', () => 'Bearer '],
    ['Basic', 'nobody', () => `Basic ${Buffer.from('alice:secret').toString('base64')}`],
    ['no scheme', 'nobody', () => alice()],
    ['another scheme', 'nobody', () => `Token ${alice()}`],
    ['trailing dot', 'nobody', () => `Bearer ${alice()}.`],
    ['two tokens', 'nobody', () => `Bearer ${alice()} ${alice()}`],
    ['signature altered', 'nobody', () => { const t = alice(); return `Bearer ${t.slice(0, -2)}${t.endsWith('AA') ? 'BB' : 'AA'}`; }],
    ['signature dropped', 'nobody', () => { const [h, p] = parts(alice()); return `Bearer ${h}.${p}.`; }],
    ['wrong secret', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', ...life(now) }), undefined, otherKey)()}`],
    ['alg none', 'nobody', () => `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', ...life(Math.floor(Date.now() / 1000)) })}.`],
    ['alg none with a signature', 'nobody', () => `Bearer ${b64url({ alg: 'none' })}.${b64url({ sub: 'alice', ...life(Math.floor(Date.now() / 1000)) })}.${parts(alice())[2]}`],
    ['HS512 with the secret', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', ...life(now) }), { alg: 'HS512' })()}`],
    ['RS256 header, HMAC signature', 'nobody', () => { const [, p, sig] = parts(alice()); return `Bearer ${b64url({ alg: 'RS256' })}.${p}.${sig}`; }],
    ['expired', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now - 7200, exp: now - 3600 }))()}`],
    ['not yet valid', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', ...life(now), nbf: now + 3000 }))()}`],
    ['issued in the future', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now + 3000, exp: now + 3600 }))()}`],
    ['no exp', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now }))()}`],
    ['no sub', 'nobody', () => `Bearer ${hs((now) => life(now))()}`],
    ['empty sub', 'nobody', () => `Bearer ${hs((now) => ({ sub: '', ...life(now) }))()}`],
    ['numeric sub', 'nobody', () => `Bearer ${hs((now) => ({ sub: 42, ...life(now) }))()}`],
    ['sub of 257 characters', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'a'.repeat(257), ...life(now) }))()}`],
    ['lives 30 days', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now, exp: now + 30 * 86400 }))()}`],
    ['exp as a string', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', iat: now, exp: String(now + 60) }))()}`],
    ['unknown crit header', 'nobody', () => `Bearer ${hs((now) => ({ sub: 'alice', ...life(now) }), { alg: 'HS256', crit: ['x-fuzz'], 'x-fuzz': 1 })()}`],
    ['payload swapped (bob) under alice’s signature', 'nobody', () => { const [h, , sig] = parts(alice()); return `Bearer ${h}.${parts(bob())[1]}.${sig}`; }],
    ['payload not JSON', 'nobody', () => { const [h, , sig] = parts(alice()); return `Bearer ${h}.${b64url('not json')}.${sig}`; }],
    ['header not JSON', 'nobody', () => { const [, p, sig] = parts(alice()); return `Bearer ${b64url('{')}.${p}.${sig}`; }],
    ['a playback link token as bearer', 'nobody', () => `Bearer ${link}`],
    ['huge token', 'nobody', () => `Bearer ${'a'.repeat(9000)}.${'b'.repeat(100)}.${'c'.repeat(100)}`],
    ['standard base64 characters', 'nobody', () => `Bearer ${alice().replace(/-/g, '+').replace(/_/g, '/')}==`],
  ];
  return variants.map(([label, who, header]) => ({
    label,
    who,
    get header() {
      return header();
    },
  }));
}

/** An Authorization case: one of the signed variants, or garbage. */
const authArb: () => fc.Arbitrary<AuthCase> = () =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...authCases.filter((a) => a.who !== 'nobody')) },
    { weight: 4, arbitrary: fc.constantFrom(...authCases.filter((a) => a.who === 'nobody')) },
    { weight: 2, arbitrary: headerText().map((s) => ({ label: 'garbage', header: s, who: 'nobody' as Who })) },
    { weight: 2, arbitrary: headerText().map((s) => ({ label: 'Bearer garbage', header: `Bearer ${s}`, who: 'nobody' as Who })) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 60 }))
        .map(([a, b, c]) => ({ label: 'three base64 segments', header: `Bearer ${a}.${b}.${c}`.replace(/=/g, ''), who: 'nobody' as Who })),
    },
  );

async function uploadFixture(name: FixtureName, owner: 'alice' | 'bob', bytes: Buffer, declared: Record<string, unknown>): Promise<string> {
  const created = await call('POST', '/files', { authorization: validAuth(owner), 'content-type': 'application/json' }, JSON.stringify({ size: bytes.length, ...declared }));
  expect(created.status, created.body.toString()).toBe(201);
  const { fileId, upload } = JSON.parse(created.body.toString());
  expect((await sendUpload(upload, bytes)).status).toBeLessThan(300);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const info = JSON.parse((await call('GET', `/files/${fileId}`, { authorization: validAuth(owner) })).body.toString());
    if (info.status !== 'awaiting_upload' && info.status !== 'processing') break;
    if (Date.now() > deadline) throw new Error(`${name} still ${info.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return fileId;
}

async function declareFixture(owner: 'alice' | 'bob', declared: Record<string, unknown>): Promise<string> {
  const created = await call('POST', '/files', { authorization: validAuth(owner), 'content-type': 'application/json' }, JSON.stringify(declared));
  expect(created.status, created.body.toString()).toBe(201);
  return JSON.parse(created.body.toString()).fileId;
}

beforeAll(async () => {
  stack = await startIsolatedStack({ STORAGE_MAX_RESPONSE_BYTES: String(MAX_RESPONSE_BYTES), STORAGE_MAX_FILE_SIZE: String(MAX_FILE_SIZE) });
  api = new URL(stack.product.api);
  const key = stack.config.jwtSecret!;
  const now = Math.floor(Date.now() / 1000);
  // Enough to upload the fixtures; the full set is built once the fixtures exist (a link needs one).
  authCases = [
    { label: 'alice Bearer', header: `Bearer ${await hs256({ sub: 'alice', iat: now, exp: now + 3600 }, key)}`, who: 'alice' },
    { label: 'bob Bearer', header: `Bearer ${await hs256({ sub: 'bob', iat: now, exp: now + 3600 }, key)}`, who: 'bob' },
  ];

  const big = wav(250_001); // > STORAGE_MAX_RESPONSE_BYTES, four 64 KiB frames
  const small = wav(30_000);
  const bobs = wav(5_000);
  const [readyBig, readySmall, rejected, bobReady, deleted] = await Promise.all([
    uploadFixture('readyBig', 'alice', big, { filename: 'interview.wav', contentType: 'audio/wav' }),
    uploadFixture('readySmall', 'alice', small, { filename: 'note é.wav', contentType: 'audio/x-wav' }),
    uploadFixture('rejected', 'alice', mp3(20_000), { filename: 'fake.wav', contentType: 'audio/wav' }),
    uploadFixture('bobReady', 'bob', bobs, { filename: 'bob.wav', contentType: 'audio/wav' }),
    uploadFixture('deleted', 'alice', wav(2_000), { filename: 'gone.wav', contentType: 'audio/wav' }),
  ]);
  const [awaitingPost, awaitingPut, multipart] = await Promise.all([
    declareFixture('alice', { filename: 'later.mp3', contentType: 'audio/mpeg', size: 1_000 }),
    declareFixture('alice', { filename: 'later.m4a', contentType: 'audio/mp4', size: 2_000, uploadMethod: 'PUT' }),
    declareFixture('alice', { filename: 'long.wav', contentType: 'audio/wav', size: 12 * MiB + 17, uploadMethod: 'MULTIPART' }),
  ]);
  const add = (f: Fixture) => (fixtures[f.name] = f);
  add({ name: 'readyBig', id: readyBig, owner: 'alice', state: 'ready', bytes: big, size: big.length, filename: 'interview.wav', contentType: 'audio/wav' });
  add({ name: 'readySmall', id: readySmall, owner: 'alice', state: 'ready', bytes: small, size: small.length, filename: 'note é.wav', contentType: 'audio/x-wav' });
  add({ name: 'rejected', id: rejected, owner: 'alice', state: 'rejected', size: 20_000, filename: 'fake.wav' });
  add({ name: 'bobReady', id: bobReady, owner: 'bob', state: 'ready', bytes: bobs, size: bobs.length, filename: 'bob.wav', contentType: 'audio/wav' });
  add({ name: 'deleted', id: deleted, owner: 'alice', state: 'deleted', size: 2_000, filename: 'gone.wav' });
  add({ name: 'awaitingPost', id: awaitingPost, owner: 'alice', state: 'awaiting', method: 'POST', size: 1_000, filename: 'later.mp3' });
  add({ name: 'awaitingPut', id: awaitingPut, owner: 'alice', state: 'awaiting', method: 'PUT', size: 2_000, filename: 'later.m4a' });
  add({ name: 'multipart', id: multipart, owner: 'alice', state: 'multipart', method: 'MULTIPART', size: 12 * MiB + 17, filename: 'long.wav' });
  for (const name of ['readyBig', 'readySmall', 'bobReady'] as const) {
    const made = await call('POST', `/files/${fixtures[name].id}/links`, { authorization: validAuth(fixtures[name].owner), 'content-type': 'application/json' }, '{}');
    expect(made.status, made.body.toString()).toBe(201);
    links[name] = new URL(JSON.parse(made.body.toString()).url).searchParams.get('token')!;
  }
  const deletedLink = await call('POST', `/files/${deleted}/links`, { authorization: validAuth('alice') }, '');
  links.deleted = new URL(JSON.parse(deletedLink.body.toString()).url).searchParams.get('token')!;
  expect((await call('DELETE', `/files/${deleted}`, { authorization: validAuth('alice') })).status).toBe(204);
  // Purged too, so that no fuzzed restore brings it back: restore answers 404 for every id then.
  expect(JSON.parse((await call('GET', '/deleted-files', { authorization: validAuth('alice') })).body.toString()).files).toHaveLength(1);
  expect((await call('DELETE', `/files/${deleted}?purge=true`, { authorization: validAuth('alice') })).status).toBe(204);
  expect(JSON.parse((await call('GET', '/deleted-files', { authorization: validAuth('alice') })).body.toString())).toEqual({ files: [] });
  expect((await call('GET', `/files/${readyBig}`, { authorization: validAuth('alice') })).status).toBe(200);
  expect(JSON.parse((await call('GET', `/files/${rejected}`, { authorization: validAuth('alice') })).body.toString()).status).toBe('rejected');

  authCases = await buildAuthCases();

  const env = stack.env;
  const encryptionKeys = env.STORAGE_ENCRYPTION_KEYS!.split(',').map((k) => k.slice(k.indexOf(':') + 1));
  const linkKey = Buffer.from(stack.config.playbackLinks.key!);
  secrets = [
    { name: 'the secret key', text: env.STORAGE_SECRET_KEY! },
    { name: 'the JWT secret', text: env.STORAGE_AUTH_JWT_SECRET! },
    ...encryptionKeys.flatMap((k) => [
      { name: 'an encryption key (base64)', text: k },
      { name: 'an encryption key (hex)', text: Buffer.from(k, 'base64').toString('hex') },
      { name: 'an encryption key (base64url)', text: Buffer.from(k, 'base64').toString('base64url') },
    ]),
    { name: 'the playback link key (hex)', text: linkKey.toString('hex') },
    { name: 'the playback link key (base64url)', text: linkKey.toString('base64url') },
    { name: 'the events token', text: env.TRANSCRIBO_EVENTS_TOKEN! },
    { name: 'the final bucket', text: stack.config.bucket },
    { name: 'the local directory', text: env.TRANSCRIBO_LOCAL_DIR! },
  ];
  presignOnly = [
    { name: 'the incoming bucket', text: stack.config.incomingBucket },
    { name: 'the access key', text: env.STORAGE_ACCESS_KEY! },
  ];
}, 180_000);

afterAll(async () => {
  if (process.env.FUZZ_STATS) process.stderr.write(`answers by method and status: ${JSON.stringify(Object.fromEntries([...tally].sort()))}\n`);
  agent.destroy();
  await stack?.close();
});

// ---------------------------------------------------------------------------------------------
// HTTP: raw, so that paths and headers go out exactly as generated

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body?: string | Buffer | undefined;
}
interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function call(method: string, path: string, headers: Record<string, string | string[] | undefined> = {}, body?: string | Buffer): Promise<Got> {
  const clean = Object.fromEntries(Object.entries(headers).filter((e): e is [string, string | string[]] => e[1] !== undefined));
  return send({ method, path, headers: clean, body });
}

async function send(req: Sent): Promise<Got> {
  try {
    return await sendOnce(req);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Node's server answers an over-long header section with 431 and closes; a client still writing may see the reset instead.
    if (headerBytes(req) >= 15_000 && (code === 'ECONNRESET' || code === 'EPIPE')) return { status: 431, headers: {}, body: Buffer.alloc(0) };
    // A kept-alive socket the server closed just as it was reused: the request never arrived; Node's documented remedy is to send it again.
    if ((error as { reusedSocket?: boolean }).reusedSocket && code === 'ECONNRESET') return sendOnce(req);
    throw error;
  }
}

function sendOnce(req: Sent): Promise<Got> {
  return new Promise((resolve, reject) => {
    // Framed by its length whatever the method (Node sends a GET's body unframed otherwise, and the server reads it as the next request).
    const headers = req.body === undefined ? req.headers : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) };
    const out = request({ host: api.hostname, port: api.port, method: req.method, path: req.path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        let body = Buffer.concat(parts);
        const encoding = String(res.headers['content-encoding'] ?? '');
        if (encoding === 'gzip') body = gunzipSync(body);
        else if (encoding === 'deflate') body = inflateSync(body);
        else if (encoding === 'br') body = brotliDecompressSync(body);
        resolve({ status: res.statusCode!, headers: res.headers, body });
      });
    });
    out.setTimeout(30_000, () => out.destroy(new Error(`no answer in 30 s to ${req.method} ${req.path.slice(0, 200)}`)));
    out.on('error', (error) => reject(Object.assign(error, { reusedSocket: out.reusedSocket })));
    out.end(req.body);
  });
}

// ---------------------------------------------------------------------------------------------
// What every answer must be

/** Every type of the catalogue (lib/errors/catalogue.ts) with the status it answers. */
const CATALOGUE: Record<string, number> = Object.fromEntries(
  Object.values(catalogue)
    .filter((value): value is typeof StorageError => typeof value === 'function' && (value === StorageError || value.prototype instanceof StorageError))
    .map((type) => [type.name, new type('probe', { operation: 'probe' }).status]),
);
const ERROR_KEYS = ['type', 'message', 'operation', 'fileId', 'timestamp', 'requestId'];

/** Words of the storage server, the SDK, the runtime or the framework: never for a client. */
const BACKEND_WORDS = [
  'NoSuchKey', 'NoSuchUpload', 'NoSuchBucket', 'AccessDenied', 'SignatureDoesNotMatch', 'InvalidAccessKeyId', 'InvalidPart',
  'EntityTooSmall', 'XMinioInvalidObjectName', 'InvalidArgument', 'MalformedXML', '<?xml', '<Error>', 'MinIO', 'S3ServiceException',
  '$metadata', 'httpStatusCode', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'node_modules', '/work/', 'file://', 'node:internal',
  'stackTrace', '"stack"', 'errorMessage', 'Serverless-offline', 'manifests/', 'pending/', 'dead-letters/', 'usage/', 'TypeError',
  'ReferenceError', 'RangeError', 'SyntaxError', 'ZodError', 'JWSSignatureVerificationFailed', 'ERR_',
];
const STACK_LINE = /\bat (?:async )?[\w$.<>]+(?: \[as [\w$]+\])? \((?:file:|node:|\/|<anonymous>)|\n\s+at \S|\bat (?:file|node):|\.[cm]?[jt]s:\d+:\d+/;

/** Every form in which the request's own text could come back (echoes are not leaks). */
function sentText(req: Sent): string {
  const headerText = Object.entries(req.headers).map(([k, v]) => `${k}: ${([] as string[]).concat(v).join('\n')}`).join('\n');
  const body = req.body === undefined ? '' : typeof req.body === 'string' ? req.body : `${req.body.toString('utf8')}\n${req.body.toString('latin1')}`;
  let decodedPath = req.path;
  try {
    decodedPath = decodeURIComponent(req.path);
  } catch {
    // not decodable: as sent
  }
  let bodyJson = '';
  try {
    bodyJson = JSON.stringify(JSON.parse(typeof req.body === 'string' ? req.body : (req.body?.toString('utf8') ?? '')));
  } catch {
    // not JSON
  }
  return [req.method, req.path, decodedPath, headerText, body, bodyJson].join('\n');
}

/**
 * Presigned URLs and POST form fields are where the incoming bucket and the access key id belong;
 * links carry a token. Words are looked for in the rest (secrets everywhere, URLs included).
 */
function withoutUrls(value: unknown, path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => withoutUrls(v, path));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' && k === 'url' && /^https?:\/\//.test(v)) out[k] = '<url>';
    else if (k === 'fields' && path[path.length - 1] === 'upload') out[k] = '<presigned form>';
    else out[k] = withoutUrls(v, [...path, k]);
  }
  return out;
}

interface Check {
  /** The route exists for this method and path (else serverless-offline's router answers, as API Gateway's would). */
  routed?: boolean;
  /** Statuses the README documents for the case. */
  statuses?: readonly number[];
  /** Further checks of a success. */
  success?: (got: Got, json: any) => void;
}

function headerBytes(req: Sent): number {
  return req.method.length + req.path.length + Object.entries(req.headers).reduce((n, [k, v]) => n + k.length + ([] as string[]).concat(v).join(', ').length + 4, 0);
}

function describeCase(req: Sent, got: Got): string {
  const body = got.body.length > 600 ? `${got.body.subarray(0, 600).toString('latin1')}…` : got.body.toString('latin1');
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v).length > 200 ? `${String(v).slice(0, 200)}… (${String(v).length})` : v]));
  const sentBody = req.body === undefined ? '' : String(req.body).slice(0, 300);
  return `${req.method} ${req.path.slice(0, 300)} ${JSON.stringify(headers)} ${JSON.stringify(sentBody)} → ${got.status} ${body}`;
}

function isContent(got: Got): boolean {
  return String(got.headers['content-type'] ?? '').startsWith('audio/');
}

/** The checks every answer passes, whatever was asked. */
function verify(req: Sent, got: Got, check: Check = {}): any {
  count(req, got);
  const where = describeCase(req, got);
  const routed = check.routed ?? true;
  let json: any;
  const text = got.body.toString('utf8');
  if (String(got.headers['content-type'] ?? '').startsWith('application/json') && got.body.length > 0) {
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`a JSON content type with a body that is not JSON: ${where}`);
    }
  }

  // Never a 5xx for a client's input; a 503 only for the identity provider, which is not configured here.
  if (got.status >= 500) {
    const allowed = got.status === 503 && json?.error?.type === 'IdentityProviderUnavailableError';
    if (!allowed) throw new Error(`a ${got.status} for client input: ${where}`);
  }

  // No leaks, in headers or body (content bodies are compared byte for byte instead).
  const sent = sentText(req);
  const headerText = Object.entries(got.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n');
  const bodyText = isContent(got) && got.status < 300 ? '' : json !== undefined ? JSON.stringify(json) : got.body.toString('latin1');
  const bodyWithoutUrls = json !== undefined ? JSON.stringify(withoutUrls(json)) : bodyText;
  for (const { name, text: secret } of secrets) {
    for (const haystack of [headerText, bodyText]) {
      if (haystack.includes(secret) && !sent.includes(secret)) throw new Error(`${name} leaked: ${where}`);
    }
  }
  for (const { name, text: secret } of presignOnly) {
    for (const haystack of [headerText, bodyWithoutUrls]) {
      if (haystack.includes(secret) && !sent.includes(secret)) throw new Error(`${name} outside a presigned URL: ${where}`);
    }
  }
  for (const word of BACKEND_WORDS) {
    if (!routed && word === 'Serverless-offline') continue;
    for (const haystack of [headerText, bodyWithoutUrls]) {
      if (haystack.includes(word) && !sent.includes(word)) throw new Error(`backend or runtime text "${word}" in the answer: ${where}`);
    }
  }
  if (STACK_LINE.test(bodyWithoutUrls) && !STACK_LINE.test(sent)) throw new Error(`a stack trace in the answer: ${where}`);

  if (got.status === 431) {
    // Node's (API Gateway's, deployed) limit on the header section, 16 KiB: refused before anything of ours runs.
    if (headerBytes(req) < 15_000) throw new Error(`431 for ${headerBytes(req)} bytes of headers: ${where}`);
    return json;
  }

  if (!routed && !(json?.error !== null && typeof json?.error === 'object')) {
    // serverless-offline's router (API Gateway's, deployed): a route that does not exist, or a path it cannot decode.
    // (A path the router normalizes onto another route, `/files/%2e/parts` → `/files/parts`, is the product's again.)
    if (![400, 403, 404, 405, 415].includes(got.status)) throw new Error(`an unrouted request answered ${got.status}: ${where}`);
    return json;
  }

  if (got.status >= 400) {
    // Exactly DESIGN.md's shape, a catalogue type, and the catalogue's status for it.
    if (json === undefined) throw new Error(`an error without a JSON body: ${where}`);
    if (Object.keys(json).join() !== 'error' || json.error === null || typeof json.error !== 'object') throw new Error(`not {"error": {...}}: ${where}`);
    const error = json.error;
    const extra = Object.keys(error).filter((k) => !ERROR_KEYS.includes(k));
    if (extra.length > 0) throw new Error(`error has fields outside the contract (${extra.join()}): ${where}`);
    for (const field of ['type', 'message', 'operation', 'timestamp', 'requestId']) {
      if (typeof error[field] !== 'string' || error[field] === '') throw new Error(`error.${field} is not a non-empty string: ${where}`);
    }
    if ('fileId' in error && typeof error.fileId !== 'string') throw new Error(`error.fileId is not a string: ${where}`);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(error.timestamp) || Number.isNaN(Date.parse(error.timestamp))) {
      throw new Error(`error.timestamp is not an ISO timestamp: ${where}`);
    }
    if (!(error.type in CATALOGUE)) throw new Error(`error.type ${error.type} is not of the catalogue: ${where}`);
    if (CATALOGUE[error.type] !== got.status) throw new Error(`${error.type} answered with ${got.status}, not ${CATALOGUE[error.type]}: ${where}`);
    if (got.status === 416 && !/^bytes \*\/\d+$/.test(String(got.headers['content-range']))) throw new Error(`a 416 without Content-Range: bytes */<size>: ${where}`);
  } else if (!isContent(got) && got.status !== 204 && json === undefined) {
    throw new Error(`a success without a JSON body: ${where}`);
  }

  if (check.statuses && !check.statuses.includes(got.status)) {
    throw new Error(`answered ${got.status}, documented: ${check.statuses.join(' or ')}: ${where}`);
  }
  if (got.status < 300 && check.success) {
    try {
      check.success(got, json);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n  in: ${where}`);
    }
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// Generators

/** Header-safe text: what a client can put in a header value (Node refuses the rest before sending). */
const headerChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
).map((c) => String.fromCharCode(c));
const headerText = (maxLength = 80) => fc.string({ unit: headerChar, maxLength }).map((s) => s.trim());

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const headerName = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 30 });
/**
 * Headers the transport or the fuzzer itself owns. `range` only goes to /content (the ranges
 * property): NOT FIXED, under `npm start` serverless-offline (hapi) applies a Range header to any
 * 200 answer of a GET itself, so `GET /files/{id}` with `Range: bytes=0-5` answers 206 with six
 * bytes of the JSON, and a unit other than bytes answers hapi's own 416 (see rangesOfHapi).
 */
const RESERVED = new Set(['cookie', 'host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'authorization', 'range', 'keep-alive', 'proxy-connection', 'http2-settings']);

/**
 * NOT FIXED, narrowed here: under `npm start`, serverless-offline (hapi) answers a Cookie header
 * that is not `name=value; …` of RFC 6265's characters (`cookie: !`) with its own
 * `{"statusCode":400,"error":"Bad Request","message":"Invalid cookie header"}` before any function
 * runs (API Gateway passes it through). Only well-formed cookies are sent; the product reads none.
 */
const cookieOctets = '!#$%&\'()*+-./0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~';
const cookieArb = fc
  .array(fc.tuple(fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 }), fc.string({ unit: fc.constantFrom(...cookieOctets), maxLength: 40 })), { minLength: 1, maxLength: 4 })
  .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('; '));

/** Odd headers beside the real ones: huge, many, latin-1, and ones that mean something to somebody. */
const oddHeaders: fc.Arbitrary<Record<string, string>> = fc
  .array(
    fc.oneof(
      fc.tuple(headerName, headerText()),
      fc.tuple(
        fc.constantFrom('x-forwarded-proto', 'x-forwarded-for', 'x-forwarded-host', 'origin', 'accept', 'accept-encoding', 'user-agent', 'x-amz-security-token', 'x-amz-date', 'if-none-match', 'if-range', 'if-match', 'cache-control', 'x-http-method-override', 'x-request-id', 'content-encoding', 'content-md5', 'accept-language', 'forwarded'),
        fc.oneof(headerText(), fc.constantFrom('gzip, deflate, br', 'https', 'http,https', '*/*', 'DELETE', 'null', '"etag"', '../../etc/passwd', 'aws-chunked', '')),
      ),
      fc.tuple(headerName, fc.integer({ min: 1000, max: 8000 }).map((n) => 'x'.repeat(n))),
      fc.tuple(fc.constant('cookie'), cookieArb),
    ),
    { maxLength: 8 },
  )
  .map((pairs) => Object.fromEntries(pairs.filter(([k]) => !RESERVED.has(k.toLowerCase()))));

const CONTENT_TYPE_VALUES = [
  'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz', 'application/octet-stream', 'application/xml', 'application/json; charset=utf-16', 'audio/wav', '',
];
/**
 * NOT FIXED, narrowed here: under `npm start`, serverless-offline (hapi) answers a body-carrying
 * request whose Content-Type is not `type/subtype[;params]` (`!`, `json`), or multipart without a
 * boundary, with its own `{"statusCode":400,"error":"Bad Request","message":"Invalid content-type
 * header"}` before any function runs: a 4xx, no leak, but not the catalogue's shape (API Gateway
 * passes such a header through to the function). The repair belongs to scripts/local/http-gateway.ts.
 */
const hapiParsesContentType = (value: string) => {
  if (value === '') return true;
  const match = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+\/[A-Za-z0-9!#$%&'*+.^_`|~-]+)([ \t;][^\r\n]*)?$/.exec(value);
  if (!match) return false;
  const params = match[2] ?? '';
  if ((params.match(/;\s*charset=/gi) ?? []).length > 1 || (params.match(/;\s*boundary=/gi) ?? []).length > 1) return false;
  return !match[1]!.toLowerCase().startsWith('multipart/') || /;\s*boundary=(?:"[^"]+"|[^;"\s]+)/i.test(params);
};
const contentTypeArb = fc.option(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPE_VALUES) },
    { weight: 1, arbitrary: fc.tuple(headerName, headerName, headerText(30)).map(([type, sub, rest]) => `${type}/${sub}${rest === '' ? '' : `; ${rest}`}`) },
    { weight: 1, arbitrary: headerText(40) },
  ).filter(hapiParsesContentType),
  { nil: undefined },
);

/** Bodies that are not what a route wants: any JSON, text, bytes, deep, wide, huge. */
const junkBody: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, '', 'null', '[]', '{}', '""', '0', 'true', '{"a":', '\ufeff{}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}') },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 60_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 5_000 }).map((n) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])))) },
  { weight: 1, arbitrary: fc.constant(undefined).map(() => JSON.stringify({ filename: 'a.wav', pad: 'x'.repeat(300 * 1024) })) },
);

const hex64 = fc.stringMatching(/^[0-9a-fA-F]{64}$/);
const ALLOWED_EXTENSIONS = () => stack.config.allowedExtensions as readonly string[];
const GENERIC_TYPES = ['', 'application/octet-stream', 'binary/octet-stream'];

/** A create body the README says is accepted. */
const validCreate = () =>
  fc
    .record(
      {
        ext: fc.constantFrom(...ALLOWED_EXTENSIONS()),
        extCase: fc.constantFrom('lower', 'upper'),
        base: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => !/[\u0000-\u001f\u007f-\u009f/\\]/.test(s)),
        typeIndex: fc.nat(),
        typeStyle: fc.constantFrom('plain', 'upper', 'params', 'generic'),
        size: fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: MAX_FILE_SIZE }), fc.constant(MAX_FILE_SIZE)),
        sha256: fc.option(hex64, { nil: undefined }),
        metadata: fc.option(
          fc.dictionary(fc.stringMatching(/^[a-z0-9_-]{1,20}$/), fc.string({ maxLength: 30 }), { maxKeys: 5 }),
          { nil: undefined },
        ),
        uploadMethod: fc.option(fc.constantFrom('POST', 'PUT', 'MULTIPART'), { nil: undefined }),
        partSize: fc.option(fc.integer({ min: 5 * MiB, max: 64 * MiB }), { nil: undefined }),
      },
      { requiredKeys: ['ext', 'extCase', 'base', 'typeIndex', 'typeStyle', 'size'] },
    )
    .map((r) => {
      const types = CONTENT_TYPES[r.ext as AudioExtension];
      const type = types[r.typeIndex % types.length]!;
      const contentType =
        r.typeStyle === 'upper' ? type.toUpperCase() : r.typeStyle === 'params' ? `${type}; codecs=1` : r.typeStyle === 'generic' ? GENERIC_TYPES[r.typeIndex % 3]! : type;
      const body: Record<string, unknown> = {
        filename: `${r.base}.${r.extCase === 'upper' ? r.ext.toUpperCase() : r.ext}`.slice(-255),
        contentType,
        size: r.size,
      };
      if (r.sha256 !== undefined) body.sha256 = r.sha256;
      if (r.metadata !== undefined) body.metadata = r.metadata;
      if (r.uploadMethod !== undefined) body.uploadMethod = r.uploadMethod;
      if (r.uploadMethod === 'MULTIPART' && r.partSize !== undefined) body.partSize = r.partSize;
      return body;
    });

/** One field of a valid body changed, removed or added. */
const mutatedCreate = () =>
  fc
    .tuple(
      validCreate(),
      fc.constantFrom('filename', 'contentType', 'size', 'sha256', 'metadata', 'uploadMethod', 'partSize', 'extra'),
      fc.oneof(
        { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
        {
          weight: 3,
          arbitrary: fc.constantFrom<unknown>(
            undefined, null, '', 0, -1, 1.5, 1e308, -0, Number.MAX_SAFE_INTEGER + 2, MAX_FILE_SIZE + 1, '100', [], {}, true,
            '../../etc/passwd.wav', 'a/b.wav', 'a\\b.wav', 'a\u0000.wav', '.wav', 'noext', 'a.exe', 'a.wav.exe', 'a.', `${'a'.repeat(252)}.wav`, `${'a'.repeat(300)}.wav`,
            'video/mp4', 'audio/mpeg', 'AUDIO/WAV', 'audio/wav; x', 'x'.repeat(101), 'text/html', '*/*',
            'put', 'GET', 'multipart', 'f'.repeat(63), 'g'.repeat(64), 'F'.repeat(64),
            { 'Bad Key': 'x' }, { ok: 'x'.repeat(257) }, Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), { ok: 1 },
            5 * MiB - 1, 5 * 1024 * MiB + 1, 5.5 * MiB,
          ),
        },
      ),
    )
    .map(([body, field, value]) => {
      const out: Record<string, unknown> = { ...body };
      if (field === 'extra') out[`x-${typeof value}`] = value ?? 1;
      else if (value === undefined) delete out[field];
      else out[field] = value;
      return out;
    });

/** The rules the README states for POST /files, checked of any body the service accepted. */
function acceptedBodyIsValid(body: any): void {
  expect(body !== null && typeof body === 'object' && !Array.isArray(body), 'accepted a body that is not an object').toBe(true);
  expect(typeof body.filename).toBe('string');
  const ext = body.filename.slice(body.filename.lastIndexOf('.') + 1).toLowerCase();
  expect(body.filename.includes('.') && ALLOWED_EXTENSIONS().includes(ext), `accepted extension of ${body.filename}`).toBe(true);
  expect(Number.isInteger(body.size) && body.size >= 1 && body.size <= MAX_FILE_SIZE, `accepted size ${body.size}`).toBe(true);
  expect(typeof body.contentType).toBe('string');
  const type = body.contentType.toLowerCase().split(';')[0].trim();
  expect(GENERIC_TYPES.includes(type) || CONTENT_TYPES[ext as AudioExtension].includes(type), `accepted type ${body.contentType} for .${ext}`).toBe(true);
  expect(body.uploadMethod === undefined || ['POST', 'PUT', 'MULTIPART'].includes(body.uploadMethod)).toBe(true);
  expect(body.sha256 === undefined || /^[0-9a-fA-F]{64}$/.test(body.sha256)).toBe(true);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What a created file's answer must say. */
function createdAnswer(body: any, json: any): void {
  expect(json.fileId).toMatch(UUID);
  expect(json.status).toBe('awaiting_upload');
  expect(Date.parse(json.expiresAt)).toBeGreaterThan(Date.now());
  const method = body.uploadMethod ?? 'POST';
  expect(json.upload.method).toBe(method);
  const endpoint = stack.config.publicEndpoint;
  const key = `uploads/${json.fileId}`;
  if (method === 'POST') {
    expect(json.upload.url).toBe(`${endpoint}/${stack.config.incomingBucket}`);
    expect(json.upload.fields.key).toBe(key);
  } else if (method === 'PUT') {
    expect(json.upload.url.startsWith(`${endpoint}/${stack.config.incomingBucket}/${key}?`)).toBe(true);
  } else {
    expect(json.upload.partSize).toBeGreaterThanOrEqual(5 * MiB);
    expect(json.upload.partCount).toBe(Math.max(1, Math.ceil(body.size / json.upload.partSize)));
  }
}

// ---- ids

type IdCase =
  | { kind: 'fixture'; fixture: FixtureName; raw: string }
  | { kind: 'unknown'; raw: string }
  | { kind: 'invalid'; raw: string }
  | { kind: 'unrouted'; raw: string };

/** Percent-encodes some characters of an id that need none: the router decodes them to the same id. */
const percentSome = (id: string, mask: number[]) =>
  [...id].map((c, i) => ((mask[i % mask.length] ?? 0) % 4 === 0 ? `%${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join('');

function classify(raw: string): IdCase {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return { kind: 'unrouted', raw };
  }
  if (raw === '' || raw.includes('/') || raw.includes('?') || raw.includes('#') || decoded === '.' || decoded === '..') return { kind: 'unrouted', raw };
  const fixture = FIXTURE_NAMES.find((n) => fixtures[n].id === decoded);
  if (fixture !== undefined) return { kind: 'fixture', fixture, raw };
  if (UUID.test(decoded)) return { kind: 'unknown', raw };
  return { kind: 'invalid', raw };
}

const idArb: () => fc.Arbitrary<IdCase> = () => {
  const fixtureId = fc.constantFrom(...FIXTURE_NAMES).map((n) => fixtures[n].id);
  return fc
    .oneof(
      { weight: 8, arbitrary: fixtureId },
      { weight: 2, arbitrary: fc.tuple(fixtureId, fc.array(fc.nat(), { minLength: 1, maxLength: 8 })).map(([id, mask]) => percentSome(id, mask)) },
      { weight: 2, arbitrary: fc.uuid({ version: 4 }) },
      { weight: 1, arbitrary: fc.uuid().map((u) => u) },
      { weight: 1, arbitrary: fixtureId.map((id) => id.toUpperCase()) },
      {
        weight: 3,
        arbitrary: fc.tuple(fixtureId, fc.nat(35), fc.constantFrom('g', 'G', '-', '', '00', 'é', ' ', '%20', '%00', '%2F', '.', '_')).map(
          ([id, at, ch]) => encodeURIComponent(`${id.slice(0, at)}${decodeURIComponent(ch === '%20' ? ' ' : ch === '%00' ? '\u0000' : ch === '%2F' ? '/' : ch)}${id.slice(at + 1)}`),
        ),
      },
      { weight: 1, arbitrary: fixtureId.map((id) => encodeURIComponent(`${id}\n`)) },
      { weight: 1, arbitrary: fixtureId.map((id) => `${id}%252F`) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          '..%2F..%2Fmanifests%2F', '%2e%2e%2fpasswd', '..%2f', '%252e%252e', '%2e', '%2e%2e', '.', '..', '', 'a/b', '%zz', '%', '%E0%A4%A',
          '%C0%AF', '%EF%BF%BF', 'manifests%2Fx.json', 'files', 'null', 'undefined', '__proto__', 'constructor', '0', '-1', 'CON', '*', '%2A',
          'x'.repeat(2_000), encodeURIComponent('🎙️'.repeat(50)),
        ),
      },
      { weight: 1, arbitrary: fixtureId.map((id) => `..%2F..%2Fmanifests%2F${id}.json`) },
      { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 50 }).map(encodeURIComponent) },
      { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 50 }).map(encodeURIComponent) },
    )
    .map(classify);
};

// ---- the routes

interface Route {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  suffix: string;
}
const ROUTES: Route[] = [
  { name: 'info', method: 'GET', suffix: '' },
  { name: 'size', method: 'GET', suffix: '/size' },
  { name: 'content', method: 'GET', suffix: '/content' },
  { name: 'links', method: 'POST', suffix: '/links' },
  { name: 'presignParts', method: 'POST', suffix: '/parts' },
  { name: 'listParts', method: 'GET', suffix: '/parts' },
  { name: 'complete', method: 'POST', suffix: '/complete' },
  { name: 's3Requests', method: 'POST', suffix: '/s3-requests' },
  { name: 'delete', method: 'DELETE', suffix: '' },
  { name: 'restore', method: 'POST', suffix: '/restore' },
];

/** Bodies a route accepts, for a file of the right kind. */
function validBodyFor(route: string, fixture: Fixture | undefined): fc.Arbitrary<string | undefined> {
  const partCount = fixture?.state === 'multipart' ? Math.ceil(fixture.size / (8 * MiB)) : 1;
  switch (route) {
    case 'links':
      return fc.oneof(fc.constantFrom(undefined, '', '{}'), fc.integer({ min: 1, max: 3600 }).map((expiresIn) => JSON.stringify({ expiresIn })));
    case 'presignParts':
      return fc.uniqueArray(fc.integer({ min: 1, max: partCount }), { minLength: 1, maxLength: partCount }).map((partNumbers) => JSON.stringify({ partNumbers }));
    case 's3Requests':
      return fc.constant(JSON.stringify({ method: fixture?.state === 'multipart' ? 'POST' : 'PUT' }));
    default:
      return fc.constantFrom(undefined, '');
  }
}

/** Near-valid bodies for the multipart routes: right fields, odd values. */
const BOUND = '$BOUND_UPLOAD_ID';
const uploadIdArb = fc.oneof(
  fc.constant(BOUND),
  fc.string({ maxLength: 40 }),
  fc.stringMatching(/^[\w.=+/-]{1,80}$/),
  fc.constantFrom('', 'x'.repeat(1025), '../x', 'null', '%00'),
);
const partNumberArb = fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constantFrom(0, 10_001, 1.5, 2 ** 53, -0, 1e308), fc.jsonValue({ maxDepth: 1 }));
const validishParts = fc
  .tuple(fc.uniqueArray(fc.integer({ min: 1, max: 2 }), { minLength: 1, maxLength: 2 }), fc.boolean())
  .map(([partNumbers, bound]) => JSON.stringify({ partNumbers, ...(bound && { uploadId: BOUND }) }));
const oddParts = fc
  .record(
    {
      partNumbers: fc.oneof(fc.array(partNumberArb, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 101, maxLength: 120 }), fc.jsonValue({ maxDepth: 1 })),
      uploadId: uploadIdArb,
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  )
  .map((r) => JSON.stringify(r));
const nearValidParts = fc.oneof({ weight: 1, arbitrary: validishParts }, { weight: 2, arbitrary: oddParts });

/** The requests of Uppy 6's signRequest, right and wrong. */
const validishS3Request = fc
  .constantFrom(
    { method: 'POST' },
    { method: 'PUT' },
    { method: 'PUT', key: '$OWN_KEY' },
    { method: 'PUT', uploadId: BOUND, partNumber: 1 },
    { method: 'PUT', uploadId: BOUND, partNumber: 2 },
    { method: 'GET', uploadId: BOUND },
    { method: 'POST', uploadId: BOUND },
    { method: 'DELETE', uploadId: BOUND },
  )
  .map((r) => JSON.stringify(r));
const oddS3Request = fc
  .record(
    {
      method: fc.oneof(fc.constantFrom('PUT', 'POST', 'GET', 'DELETE'), fc.constantFrom('put', 'HEAD', 'PATCH', '', null, 1)),
      uploadId: uploadIdArb,
      partNumber: partNumberArb,
      key: fc.oneof(fc.constant('$OWN_KEY'), fc.constantFrom('uploads/x', '../files/x', 'manifests/x.json', ''), fc.string({ maxLength: 30 })),
      contentType: fc.oneof(fc.constantFrom('audio/wav', 'text/html', ''), fc.string({ maxLength: 30 })),
    },
    { requiredKeys: ['method'] },
  )
  .map((r) => JSON.stringify(r));
const nearValidS3Request = fc.oneof({ weight: 1, arbitrary: validishS3Request }, { weight: 2, arbitrary: oddS3Request });

async function boundUploadId(fileId: string): Promise<string> {
  return (await stack.ctx.manifests.read(fileId))?.manifest.multipart?.uploadId ?? 'none-bound';
}
async function substitute(body: string | Buffer | undefined, fileId: string): Promise<string | Buffer | undefined> {
  if (typeof body !== 'string' || (!body.includes(BOUND) && !body.includes('$OWN_KEY'))) return body;
  return body.replaceAll(BOUND, await boundUploadId(fileId)).replaceAll('$OWN_KEY', `uploads/${fileId}`);
}

/**
 * What the README documents for a route, given who calls, which file, and whether the body is one
 * the route accepts. `bodyValid` false: any 400 is documented too (a body is read before the file).
 */
function documented(route: string, id: IdCase, who: Who, bodyValid: boolean, rangeStatuses?: readonly number[]): readonly number[] {
  if (who === 'nobody') return [401];
  const bodyRoute = ['links', 'presignParts', 's3Requests'].includes(route);
  const badBody = bodyRoute && !bodyValid ? [400] : [];
  if (id.kind === 'invalid') return [400];
  const fixture = id.kind === 'fixture' ? fixtures[id.fixture] : undefined;
  const owned = fixture !== undefined && fixture.state !== 'deleted' && fixture.owner === who;
  if (!owned) return [404, ...badBody, ...(route === 'content' && rangeStatuses?.includes(400) ? [400] : [])];
  const { state } = fixture;
  const ready = state === 'ready';
  const settled = ready || state === 'rejected';
  switch (route) {
    case 'info':
      return [200];
    case 'size':
      return ready ? [200] : [409];
    case 'content':
      if (!ready) return [409, ...(rangeStatuses?.includes(400) ? [400] : [])];
      return rangeStatuses ?? (fixture.size > MAX_RESPONSE_BYTES ? [413] : [200]);
    case 'links':
      return [ready ? 201 : 409, ...badBody];
    case 'presignParts':
      if (settled) return [409, ...badBody];
      if (state === 'awaiting') return [400];
      // A concurrent bind or an unbinding signed abort may answer 409 "changed meanwhile"/"aborted".
      return bodyValid ? [200, 409] : [200, 400, 409];
    case 'listParts':
      if (settled) return [409];
      return state === 'awaiting' ? [400] : [200, 409];
    case 'complete':
      if (settled) return [409];
      return state === 'awaiting' ? [400] : [400, 409];
    case 's3Requests':
      if (settled) return [400, 409];
      if (state === 'awaiting') return bodyValid ? [200] : [200, 400];
      return [200, 400, 409];
    case 'delete':
      return [204];
    case 'restore':
      // Nothing deleted is restorable here (the deleted fixture was purged); restoring a ready file is a repeat: its info.
      return ready ? [200] : [404];
    default:
      throw new Error(route);
  }
}

/** Checks of a route's success, beyond its status. */
function successOf(route: string, id: IdCase, fixtureOwnerWho: Who): Check['success'] {
  const fixture = id.kind === 'fixture' ? fixtures[id.fixture] : undefined;
  return (got, json) => {
    expect(fixture, 'a success for a file that is not the caller’s').toBeDefined();
    expect(fixture!.owner === fixtureOwnerWho).toBe(true);
    const fileId = fixture!.id;
    switch (route) {
      case 'info':
        expect(json).toMatchObject({ fileId, filename: fixture!.filename });
        if (fixture!.state === 'ready') expect(json).toMatchObject({ status: 'ready', size: fixture!.size, sha256: sha256(fixture!.bytes!), encrypted: true });
        return;
      case 'size':
        expect(json).toEqual({ fileId, size: fixture!.size });
        return;
      case 'content':
        expect(got.status).toBe(200);
        expect(got.body.equals(fixture!.bytes!), 'whole content differs from the upload').toBe(true);
        expect(got.headers['content-range']).toBeUndefined();
        return;
      case 'links':
        expect(json.fileId).toBe(fileId);
        expect(json.url).toMatch(new RegExp(`/files/${fileId}/content\\?token=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`));
        return;
      case 'presignParts':
        for (const part of json.parts) {
          expect(part.url.startsWith(`${stack.config.publicEndpoint}/${stack.config.incomingBucket}/uploads/${fileId}?`)).toBe(true);
          expect(part.size).toBe(Math.min(json.partSize, fixture!.size - (part.partNumber - 1) * json.partSize));
        }
        return;
      case 'listParts':
        expect(json).toMatchObject({ partCount: Math.ceil(fixture!.size / json.partSize), completed: false });
        return;
      case 's3Requests':
        expect(json.url.startsWith(`${stack.config.publicEndpoint}/${stack.config.incomingBucket}/uploads/${fileId}?`)).toBe(true);
        return;
      case 'restore':
        expect(json).toMatchObject({ fileId, status: 'ready', size: fixture!.size });
        return;
      default:
        throw new Error(`no success expected from ${route}`);
    }
  };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---- ranges

/** RFC 9110's whitespace (OWS): what a client may put around commas. */
const ows = fc.constantFrom('', '', '', ' ', '  ', '\t');
const position = (size: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: size + 5 }).map(String) },
    { weight: 2, arbitrary: fc.constantFrom(0, 1, size - 1, size, size + 1, 65535, 65536, 65537, MAX_RESPONSE_BYTES - 1, MAX_RESPONSE_BYTES, 131072).map(String) },
    { weight: 1, arbitrary: fc.integer({ min: 16, max: 40 }).map((n) => '9'.repeat(n)) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: size })).map(([zeros, n]) => `${'0'.repeat(zeros)}${n}`) },
    { weight: 1, arbitrary: fc.constantFrom(String(2 ** 53), String(2 ** 53 + 1), '1' + '0'.repeat(400)) },
  );
const rangeSpec = (size: number) =>
  fc.oneof(
    fc.tuple(position(size), position(size)).map(([a, b]) => `${a}-${b}`),
    position(size).map((a) => `${a}-`),
    position(size).map((n) => `-${n}`),
  );
/** A Range header: well-formed ones of every sort (the README's forms, several at once, empty list elements), and junk. */
const rangeHeader = (size: number): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom('bytes', 'bytes', 'Bytes', 'BYTES'), rangeSpec(size)).map(([unit, spec]) => `${unit}=${spec}`) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('bytes', 'Bytes'), fc.array(fc.tuple(ows, fc.option(rangeSpec(size), { nil: '', freq: 6 }), ows), { minLength: 1, maxLength: 6 }))
        .map(([unit, specs]) => `${unit}=${specs.map(([a, s, b]) => `${a}${s}${b}`).join(',')}`),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('items', 'none', 'lines', 'x-bytes', 'byte', 'bytes2'), rangeSpec(size)).map(([unit, spec]) => `${unit}=${spec}`) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined, '', 'bytes', 'bytes=', 'bytes=-', 'bytes=--1', 'bytes=1-2-3', 'bytes=a-b', 'bytes=0x10-20', 'bytes=1e3-', 'bytes=+1-2', 'bytes=-0',
        'bytes=0-0', 'bytes 0-1', '=0-1', 'bytes==0-1', 'bytes=0 1-2', 'bytes=½-1', 'bytes=¹-²', 'bytes=0-1;q=1', 'bytes=,', 'bytes=,,0-1,,',
        `bytes=${Array.from({ length: 100 }, (_, i) => `${i}-${i}`).join(',')}`, `bytes=${Array.from({ length: 101 }, (_, i) => `${i}-${i}`).join(',')}`,
        'bytes=0-1,bytes=2-3', 'bytes = 0 - 5', 'bytes=\t0-5', ' bytes=1-2',
      ),
    },
    { weight: 1, arbitrary: headerText(60) },
    { weight: 1, arbitrary: headerText(40).map((s) => `bytes=${s}`) },
  );

/**
 * NOT FIXED, narrowed here: under `npm start`, serverless-offline's hapi applies the request's
 * Range header to any 200 answer of a GET (its `response.ranges` default). Where the README has
 * a Range of another unit ignored and the whole file served (200), hapi answers its own 416,
 * `{"statusCode":416,"error":"Requested Range Not Satisfiable",…}`, and for the JSON routes it
 * clips the JSON to a 206. API Gateway does neither; the repair belongs to
 * scripts/local/http-gateway.ts (or the route options of serverless-offline). Such headers are
 * sent only where the product itself answers something other than 200.
 */
function rangesOfHapi(range: string | undefined, fixture: Fixture): boolean {
  return range !== undefined && range.trim() !== '' && fixture.state === 'ready' && rangeOracle(range, fixture.size).status === 200;
}

type RangeAnswer = { status: 200 } | { status: 206; start: number; end: number } | { status: 400 | 413 | 416 };

/**
 * The README's ranges, read independently of the product: RFC 9110 §14.1–14.2 (unit
 * case-insensitive, empty list elements ignored, a last position past the end clamped, an
 * inverted or out-of-file spec unsatisfiable, 416 when none is left), with the product's own
 * choices (malformed `bytes` → 400, several served as one covering part, at most
 * STORAGE_MAX_RESPONSE_BYTES from its start, any whitespace tolerated around `=`, `-` and `,`).
 */
function rangeOracle(header: string | undefined, size: number): RangeAnswer {
  const whole = (): RangeAnswer => (size > MAX_RESPONSE_BYTES ? { status: 413 } : { status: 200 });
  const value = header?.trim();
  if (value === undefined || value === '') return whole();
  const unit = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=/.exec(value);
  if (!unit) return { status: 400 };
  if (unit[1]!.toLowerCase() !== 'bytes') return whole();
  const elements = value.slice(unit[0].length).split(',');
  if (elements.length > 100) return { status: 400 };
  const specs = elements.map((e) => e.trim()).filter((e) => e !== '');
  if (specs.length === 0) return { status: 400 };
  const served: Array<[number, number]> = [];
  for (const spec of specs) {
    const m = /^([0-9]*)\s*-\s*([0-9]*)$/.exec(spec);
    if (!m || (m[1] === '' && m[2] === '')) return { status: 400 };
    const first = m[1] === '' ? undefined : BigInt(m[1]!);
    const last = m[2] === '' ? undefined : BigInt(m[2]!);
    const total = BigInt(size);
    if (first === undefined) {
      if (last! > 0n) served.push([Number(total > last! ? total - last! : 0n), size - 1]);
    } else if (first < total && (last === undefined || last >= first)) {
      served.push([Number(first), Number(last === undefined || last >= total ? total - 1n : last)]);
    }
  }
  if (served.length === 0) return { status: 416 };
  const start = Math.min(...served.map((r) => r[0]));
  const end = Math.min(Math.max(...served.map((r) => r[1])), start + MAX_RESPONSE_BYTES - 1);
  return { status: 206, start, end };
}

/** Whatever the header: a 206 serves exactly the bytes its Content-Range names, within the file and the bound. */
function bytesAreRight(got: Got, fixture: Fixture): void {
  const bytes = fixture.bytes!;
  if (got.status === 200) {
    expect(got.body.equals(bytes), 'a 200 whose body is not the file').toBe(true);
    expect(got.headers['content-range']).toBeUndefined();
  }
  if (got.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(got.headers['content-range']));
    expect(m, `Content-Range ${got.headers['content-range']}`).not.toBeNull();
    const [start, end, total] = [Number(m![1]), Number(m![2]), Number(m![3])];
    expect(total).toBe(bytes.length);
    expect(start).toBeLessThanOrEqual(end);
    expect(end).toBeLessThan(bytes.length);
    expect(end - start + 1).toBeLessThanOrEqual(MAX_RESPONSE_BYTES);
    expect(got.headers['content-length']).toBe(String(end - start + 1));
    expect(got.body.equals(bytes.subarray(start, end + 1)), `206 bytes ${start}-${end} differ from the upload's`).toBe(true);
  }
  if (got.status === 200 || got.status === 206) {
    expect(got.headers['content-type']).toBe(fixture.contentType);
    expect(got.headers.etag).toBe(`"${sha256(bytes)}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// The properties

/** On a failure, npm start's output goes to a file whose name is on stderr. */
async function keepingLog<T>(name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const file = join(tmpdir(), `transcribo-fuzz-${name}-${Date.now()}.log`);
    writeFileSync(file, stack.product.output());
    process.stderr.write(`npm start's output for the failed property ${name}: ${file}\n`);
    throw error;
  }
}

/** With FUZZ_STATS=1, how the answers were spread, by property and status (printed at the end). */
const tally = new Map<string, number>();
function count(req: Sent, got: Got): void {
  const key = `${req.method} ${got.status}`;
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

function assertProperty<T>(name: keyof typeof WEIGHTS, arb: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>): Promise<void> {
  return keepingLog(name, () => fc.assert(fc.asyncProperty(arb, predicate), { numRuns: runsOf(name), ...replay }));
}

const pathOf = (id: IdCase, route: Route) => `/files/${id.raw}${route.suffix}`;

describe('fuzzing every route of the HTTP API against npm start on MinIO', () => {
  it.concurrent(`POST /files: bodies, content types, headers, tokens (${runsOf('create')} cases)`, { timeout: propertyTimeout('create') }, async () => {
    const bodyArb = fc.oneof(
      { weight: 4, arbitrary: validCreate().map((body) => ({ kind: 'valid' as const, body, text: JSON.stringify(body) as string | Buffer | undefined })) },
      { weight: 5, arbitrary: mutatedCreate().map((body) => ({ kind: 'mutated' as const, body, text: JSON.stringify(body) as string | Buffer | undefined })) },
      { weight: 3, arbitrary: junkBody.map((text) => ({ kind: 'junk' as const, body: undefined, text })) },
    );
    await assertProperty('create', fc.record({ auth: authArb(), body: bodyArb, contentType: contentTypeArb, headers: oddHeaders }), async ({ auth, body, contentType, headers }) => {
      const req: Sent = {
        method: 'POST',
        path: '/files',
        headers: { ...headers, ...(contentType !== undefined && { 'content-type': contentType }), ...(auth.header !== undefined && { authorization: auth.header }) },
        body: body.text,
      };
      const got = await send(req);
      const tooLarge = typeof body.text === 'string' && Buffer.byteLength(body.text) > 256 * 1024;
      const statuses = tooLarge ? [413] : auth.who === 'nobody' ? [401] : body.kind === 'valid' ? [201] : [201, 400, 413];
      const json = verify(req, got, {
        statuses,
        success: (_got, answer) => {
          const parsed = JSON.parse(typeof body.text === 'string' ? body.text : body.text!.toString('utf8'));
          acceptedBodyIsValid(parsed);
          createdAnswer(parsed, answer);
        },
      });
      if (got.status === 413 && !tooLarge) {
        const parsed = body.body as Record<string, unknown> | undefined;
        expect(typeof parsed?.size === 'number' && parsed.size > MAX_FILE_SIZE, `413 for ${JSON.stringify(parsed)?.slice(0, 200)}`).toBe(true);
        expect(json.error.type).toBe('StorageFileSizeError');
      }
    });
  });

  it.concurrent(`every route by id: ids, tokens, bodies, headers, methods (${runsOf('byId')} cases)`, { timeout: propertyTimeout('byId') }, async () => {
    const caseArb = fc
      .record({ route: fc.constantFrom(...ROUTES), id: idArb(), auth: authArb(), headers: oddHeaders, contentType: contentTypeArb, query: fc.option(fc.constantFrom('?x=1', '?token=', '?token=abc', '?a=%20&b', '?%41=%42'), { freq: 8, nil: '' }) })
      // The owner's DELETE of a fixture would end the other properties' files: deletes of fresh files are their own property.
      .filter(({ route, id, auth }) => !(route.name === 'delete' && id.kind === 'fixture' && fixtures[id.fixture].owner === auth.who && fixtures[id.fixture].state !== 'deleted'))
      .chain((c) => {
        const fixture = c.id.kind === 'fixture' ? fixtures[c.id.fixture] : undefined;
        return fc
          .oneof(
            { weight: 2, arbitrary: validBodyFor(c.route.name, fixture).map((text) => ({ text: text as string | Buffer | undefined, valid: true })) },
            { weight: 1, arbitrary: junkBody.map((text) => ({ text, valid: false })) },
          )
          .map((body) => ({ ...c, body }));
      });
    await assertProperty('byId', caseArb, async ({ route, id, auth, headers, contentType, query, body }) => {
      const fileId = id.kind === 'fixture' ? fixtures[id.fixture].id : '';
      const req: Sent = {
        method: route.method,
        path: `${pathOf(id, route)}${query}`,
        headers: { ...headers, ...(contentType !== undefined && { 'content-type': contentType }), ...(auth.header !== undefined && { authorization: auth.header }) },
        body: route.method === 'GET' || route.method === 'DELETE' ? (body.valid ? undefined : body.text) : await substitute(body.text, fileId),
      };
      const got = await send(req);
      const tooLarge = req.body !== undefined && Buffer.byteLength(req.body) > 256 * 1024;
      if (id.kind === 'unrouted') {
        verify(req, got, { routed: false });
        return;
      }
      // A body on a GET or DELETE changes nothing; a body over the gateway's bound is refused before anything.
      const bodyValid = body.valid || !['links', 'presignParts', 's3Requests'].includes(route.name);
      const statuses = tooLarge ? [413] : documented(route.name, id, auth.who, bodyValid);
      verify(req, got, { statuses, success: successOf(route.name, id, auth.who) });
    });
  });

  it.concurrent(`GET /files/{id}/content with Range headers: exactly the right bytes (${runsOf('ranges')} cases)`, { timeout: propertyTimeout('ranges') }, async () => {
    const caseArb = fc
      .record({
        fixture: fc.constantFrom<FixtureName>('readyBig', 'readyBig', 'readySmall', 'rejected', 'bobReady'),
        auth: fc.oneof({ weight: 8, arbitrary: fc.constant('owner' as const) }, { weight: 1, arbitrary: fc.constant('link' as const) }, { weight: 1, arbitrary: fc.constantFrom(...authCases.filter((a) => a.label !== 'alice Bearer')) }),
        headers: fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: oddHeaders }),
      })
      .chain((c) => rangeHeader(fixtures[c.fixture].size).filter((range) => !rangesOfHapi(range, fixtures[c.fixture])).map((range) => ({ ...c, range })));
    await assertProperty('ranges', caseArb, async ({ fixture: name, auth, headers, range }) => {
      const fixture = fixtures[name];
      const who: Who = auth === 'owner' || auth === 'link' ? fixture.owner : auth.who;
      const authorization = auth === 'owner' ? validAuth(fixture.owner) : auth === 'link' ? undefined : auth.header;
      const viaLink = auth === 'link' && name !== 'rejected';
      const req: Sent = {
        method: 'GET',
        path: `/files/${fixture.id}/content${viaLink ? `?token=${links[name as 'readyBig']}` : ''}`,
        headers: { ...headers, ...(authorization !== undefined && { authorization }), ...(range !== undefined && { range }) },
      };
      const got = await send(req);
      const expected = fixture.state === 'ready' ? rangeOracle(range, fixture.size) : undefined;
      const caller: Who = auth === 'link' && !viaLink ? 'nobody' : who;
      const rangeStatuses = expected ? [expected.status] : rangeOracle(range, 1).status === 400 ? [400] : [];
      verify(req, got, { statuses: documented('content', { kind: 'fixture', fixture: name, raw: fixture.id }, caller, true, rangeStatuses) });
      if (got.status === 200 || got.status === 206) {
        try {
          bytesAreRight(got, fixture);
          if (expected?.status === 206) expect(got.headers['content-range']).toBe(`bytes ${expected.start}-${expected.end}/${fixture.size}`);
        } catch (error) {
          throw new Error(`${(error as Error).message}\n  in: ${describeCase(req, got)}`);
        }
      }
      if (got.status === 416) expect(got.headers['content-range']).toBe(`bytes */${fixture.size}`);
    });
  });

  it.concurrent(`playback links: valid, tampered, expired, another file's, with and without a bearer token (${runsOf('links')} cases)`, { timeout: propertyTimeout('links') }, async () => {
    const key = stack.config.playbackLinks.key!;
    const now = Math.floor(Date.now() / 1000);
    const made = {
      expired: (await signPlaybackLink(key, 'alice', fixtures.readyBig.id, -120)).token,
      otherOwner: (await signPlaybackLink(key, 'bob', fixtures.readyBig.id, 600)).token,
      withBearerKey: await hs256({ sub: 'alice', fid: fixtures.readyBig.id, aud: 'transcribo:playback', iat: now, exp: now + 600 }, stack.config.jwtSecret!),
      noAudience: await hs256({ sub: 'alice', fid: fixtures.readyBig.id, iat: now, exp: now + 600 }, key),
      noFid: await hs256({ sub: 'alice', aud: 'transcribo:playback', iat: now, exp: now + 600 }, key),
      algNone: `${b64url({ alg: 'none' })}.${b64url({ sub: 'alice', fid: fixtures.readyBig.id, aud: 'transcribo:playback', exp: now + 600 })}.`,
    };
    type LinkCase = { label: string; token: string; file: FixtureName; expect: 'serve' | 401 | 404 };
    const cases: LinkCase[] = [
      { label: 'valid', token: links.readyBig, file: 'readyBig', expect: 'serve' },
      { label: 'valid (small)', token: links.readySmall, file: 'readySmall', expect: 'serve' },
      { label: 'valid (bob)', token: links.bobReady, file: 'bobReady', expect: 'serve' },
      { label: 'another file’s', token: links.readySmall, file: 'readyBig', expect: 401 },
      { label: 'another owner’s file’s', token: links.bobReady, file: 'readyBig', expect: 401 },
      { label: 'a deleted file’s', token: links.deleted, file: 'deleted', expect: 404 },
      { label: 'expired', token: made.expired, file: 'readyBig', expect: 401 },
      { label: 'signed for another owner of this file', token: made.otherOwner, file: 'readyBig', expect: 404 },
      { label: 'signed with the bearer secret', token: made.withBearerKey, file: 'readyBig', expect: 401 },
      { label: 'no audience', token: made.noAudience, file: 'readyBig', expect: 401 },
      { label: 'no fid', token: made.noFid, file: 'readyBig', expect: 401 },
      { label: 'alg none', token: made.algNone, file: 'readyBig', expect: 401 },
    ];
    const linkArb = fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom(...cases) },
      {
        weight: 3,
        arbitrary: fc.tuple(fc.constantFrom('readyBig', 'readySmall') as fc.Arbitrary<'readyBig' | 'readySmall'>, fc.nat(), fc.constantFrom(...'ABCDEFabcdef0123456789-_.'.split(''))).map(([file, at, ch]) => {
          const token = links[file];
          const i = at % token.length;
          const tampered = `${token.slice(0, i)}${ch}${token.slice(i + 1)}`;
          // The last character of a base64url signature carries 2 unused bits: some changes there decode to the same signature.
          const same = tampered === token || (i === token.length - 1 && Buffer.from(tampered.split('.')[2] ?? '', 'base64url').equals(Buffer.from(token.split('.')[2]!, 'base64url')));
          return { label: 'tampered', token: tampered, file, expect: (same ? 'serve' : 401) as LinkCase['expect'] };
        }),
      },
      { weight: 2, arbitrary: fc.string({ maxLength: 80 }).map((s) => ({ label: 'garbage', token: s, file: 'readyBig' as FixtureName, expect: 401 as const })) },
    );
    const caseArb = fc.record({
      link: linkArb,
      authorization: fc.option(fc.constantFrom(...authCases), { freq: 5, nil: undefined }),
      route: fc.constantFrom(...ROUTES.filter((r) => r.name !== 'delete')),
      onContent: fc.boolean(),
      encodeToken: fc.boolean(),
      range: fc.option(fc.constantFrom('bytes=0-99', 'bytes=-10', 'bytes=1000-', 'bytes=999999-'), { nil: undefined }),
      twice: fc.boolean(),
    });
    await assertProperty('links', caseArb, async ({ link, authorization, route: other, onContent, encodeToken, range, twice }) => {
      const route = onContent ? ROUTES.find((r) => r.name === 'content')! : other;
      const fixture = fixtures[link.file];
      const token = encodeToken ? encodeURIComponent(link.token) : link.token.replace(/[^\x21-\x7e]|[#&+%]/g, encodeURIComponent);
      const query = twice ? `?token=${token}&token=${token}` : `?token=${token}`;
      const req: Sent = {
        method: route.method,
        path: `/files/${fixture.id}${route.suffix}${query}`,
        headers: { ...(authorization?.header !== undefined && { authorization: authorization.header }), ...(range !== undefined && route.name === 'content' && { range }) },
        ...(route.method === 'POST' && { body: '{}' }),
      };
      const got = await send(req);
      const id: IdCase = { kind: 'fixture', fixture: link.file, raw: fixture.id };
      let statuses: readonly number[];
      if (authorization?.header !== undefined || route.name !== 'content') {
        // The header, when there is one, decides; elsewhere than /content a link is no credential.
        statuses = documented(route.name, id, authorization?.who ?? 'nobody', false, route.name === 'content' && fixture.state === 'ready' ? [rangeOracle(range, fixture.size).status] : undefined);
      } else if (twice) {
        // Two tokens are not one valid token (API Gateway joins repeated parameters with a comma).
        statuses = link.expect === 'serve' ? [401] : [link.expect === 404 ? 401 : link.expect];
      } else if (link.expect === 'serve') {
        statuses = [rangeOracle(range, fixture.size).status];
      } else statuses = [link.expect];
      verify(req, got, { statuses, success: route.name === 'content' ? (g) => bytesAreRight(g, fixture) : successOf(route.name, id, authorization?.who ?? fixture.owner) });
    });
  });

  it.concurrent(`resumable uploads: parts, list, complete, S3 request signing with near-valid bodies (${runsOf('multipart')} cases)`, { timeout: propertyTimeout('multipart') }, async () => {
    const caseArb = fc.record({
      fixture: fc.constantFrom<FixtureName>('multipart', 'multipart', 'multipart', 'awaitingPut', 'awaitingPost', 'readySmall', 'rejected'),
      route: fc.constantFrom('presignParts', 'presignParts', 's3Requests', 's3Requests', 's3Requests', 'listParts', 'complete'),
      parts: nearValidParts,
      s3: nearValidS3Request,
      contentType: contentTypeArb,
      who: fc.constantFrom<Who>('alice', 'alice', 'alice', 'bob'),
    });
    await assertProperty('multipart', caseArb, async ({ fixture: name, route: routeName, parts, s3, contentType, who }) => {
      const fixture = fixtures[name];
      const route = ROUTES.find((r) => r.name === routeName)!;
      const body = routeName === 'presignParts' ? parts : routeName === 's3Requests' ? s3 : undefined;
      const req: Sent = {
        method: route.method,
        path: `/files/${fixture.id}${route.suffix}`,
        headers: { authorization: validAuth(who as 'alice' | 'bob'), ...(contentType !== undefined && { 'content-type': contentType }) },
        body: await substitute(body, fixture.id),
      };
      const got = await send(req);
      const id: IdCase = { kind: 'fixture', fixture: name, raw: fixture.id };
      verify(req, got, { statuses: documented(routeName, id, who, false), success: successOf(routeName, id, who) });
      if (got.status === 200 && routeName === 's3Requests') {
        // Never a request on another key, and a part only within the file's layout.
        const sent = JSON.parse(String(req.body));
        const json = JSON.parse(got.body.toString());
        const url = new URL(json.url);
        expect(url.pathname).toBe(`/${stack.config.incomingBucket}/uploads/${fixture.id}`);
        if (url.searchParams.has('partNumber')) {
          expect(Number(url.searchParams.get('partNumber'))).toBe(sent.partNumber);
          expect(sent.partNumber).toBeLessThanOrEqual(Math.ceil(fixture.size / (8 * MiB)));
        }
      }
    });
  });

  it.concurrent(`a recording's life with fuzzed names and metadata: upload, read, refused deletes, delete, gone everywhere (${runsOf('deletes')} cases)`, { timeout: propertyTimeout('deletes') }, async () => {
    const oddName = fc
      .array(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 8 }), fc.constantFrom('\ud800', '\udfff', '"', "'", ';', '%', '%2F', '\u2028', '\u202e', '🎙', ' ', '..', '=?utf-8?', 'filename*=x', '*', '#', '?')), { minLength: 1, maxLength: 6 })
      .map((parts) => parts.join('').replace(/[\u0000-\u001f\u007f/\\]/g, '') || 'x');
    const caseArb = fc.record({
      name: oddName,
      ext: fc.constantFrom('wav', 'WAV', 'Wav'),
      contentType: fc.constantFrom(...CONTENT_TYPES.wav, 'AUDIO/WAV', 'audio/wav; codecs=1', '', 'application/octet-stream'),
      method: fc.constantFrom('POST', 'PUT'),
      size: fc.integer({ min: 1_000, max: 70_000 }),
      metadata: fc.option(fc.dictionary(fc.stringMatching(/^[a-z0-9_-]{1,12}$/), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('\ud800', '<script>', '${x}', '')), { maxKeys: 4 }), { nil: undefined }),
      attempt: fc.oneof(
        fc.constantFrom(...authCases.filter((a) => a.who !== 'alice')).map((auth) => ({ auth, mangle: 'none' as const })),
        fc.constantFrom('upper', 'encoded', 'traversal').map((mangle) => ({ auth: authCases.find((a) => a.label === 'alice Bearer')!, mangle })),
      ),
      headers: oddHeaders,
    });
    await assertProperty('deletes', caseArb, async ({ name, ext, contentType, method, size, metadata, attempt, headers }) => {
      const alice = { authorization: validAuth('alice') };
      const bytes = wav(size);
      const filename = `${name}.${ext}`.slice(-255);
      const declared = { filename, contentType, size, uploadMethod: method, ...(metadata && { metadata }) };
      const createReq: Sent = { method: 'POST', path: '/files', headers: { ...alice, 'content-type': 'application/json' }, body: JSON.stringify(declared) };
      // Refused: a name that is not well-formed Unicode (a lone surrogate), or metadata over its byte limit.
      const acceptable = filename.isWellFormed() && Buffer.byteLength(JSON.stringify(metadata ?? {})) <= 1024;
      const created = verify(createReq, await send(createReq), { statuses: acceptable ? [201] : [400] });
      if (!acceptable) return;
      const { fileId } = created;
      expect((await sendUpload(created.upload, bytes)).status).toBeLessThan(300);
      const info: Sent = { method: 'GET', path: `/files/${fileId}`, headers: alice };
      let settled: any;
      for (const deadline = Date.now() + 60_000; ; ) {
        settled = verify(info, await send(info), { statuses: [200] });
        if (settled.status !== 'awaiting_upload' && settled.status !== 'processing') break;
        if (Date.now() > deadline) throw new Error(`${fileId} still ${settled.status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(settled, settled.reason).toMatchObject({ status: 'ready', filename, size, sha256: sha256(bytes), contentType: GENERIC_TYPES.includes(contentType) ? 'audio/wav' : contentType.toLowerCase().split(';')[0]!.trim() });
      if (metadata && Object.keys(metadata).length > 0) expect(settled.metadata).toEqual(metadata);
      const content: Sent = { method: 'GET', path: `/files/${fileId}/content`, headers: { ...alice, ...headers } };
      verify(content, await send(content), { statuses: [200], success: (got) => bytesAreRight(got, { name: 'readySmall', id: fileId, owner: 'alice', state: 'ready', bytes, size, filename, contentType: settled.contentType }) });
      const link: Sent = { method: 'POST', path: `/files/${fileId}/links`, headers: alice };
      const linked = verify(link, await send(link), { statuses: [201] });
      const viaLink: Sent = { method: 'GET', path: `${new URL(linked.url).pathname}${new URL(linked.url).search}`, headers: { range: 'bytes=10-20' } };
      verify(viaLink, await send(viaLink), { statuses: [206], success: (got) => expect(got.body.equals(bytes.subarray(10, 21))).toBe(true) });

      const raw = attempt.mangle === 'upper' ? fileId.toUpperCase() : attempt.mangle === 'encoded' ? percentSome(fileId, [0, 1]) : attempt.mangle === 'traversal' ? `..%2F${fileId}` : fileId;
      const wrong: Sent = { method: 'DELETE', path: `/files/${raw}`, headers: { ...headers, ...(attempt.auth.header !== undefined && { authorization: attempt.auth.header }) } };
      const wrongStatuses = attempt.auth.who === 'nobody' ? [401] : attempt.mangle === 'encoded' ? [204] : attempt.mangle === 'none' ? [404] : [400];
      verify(wrong, await send(wrong), { statuses: wrongStatuses });
      if (attempt.mangle !== 'encoded') {
        verify(info, await send(info), { statuses: [200] });
        const real: Sent = { method: 'DELETE', path: `/files/${fileId}`, headers: alice };
        verify(real, await send(real), { statuses: [204] });
      }
      for (const [verb, suffix] of [['DELETE', ''], ['GET', ''], ['GET', '/size'], ['GET', '/content'], ['GET', '/parts'], ['POST', '/parts'], ['POST', '/complete'], ['POST', '/links'], ['POST', '/s3-requests']] as const) {
        const body = verb === 'POST' && suffix === '/parts' ? '{"partNumbers":[1]}' : verb === 'POST' && suffix === '/s3-requests' ? '{"method":"PUT"}' : undefined;
        const after: Sent = { method: verb, path: `/files/${fileId}${suffix}`, headers: alice, ...(body !== undefined && { body }) };
        verify(after, await send(after), { statuses: [404] });
      }
      // The link died with the file.
      verify(viaLink, await send(viaLink), { statuses: [404] });
    });
  });
});

describe('after the fuzzing', () => {
  it('left every recording as it was: the same bytes, the same states', async () => {
    for (const name of FIXTURE_NAMES) {
      const fixture = fixtures[name];
      const req: Sent = { method: 'GET', path: `/files/${fixture.id}`, headers: { authorization: validAuth(fixture.owner) } };
      const info = verify(req, await send(req), { statuses: [fixture.state === 'deleted' ? 404 : 200] });
      if (fixture.state === 'ready') {
        expect(info).toMatchObject({ status: 'ready', size: fixture.size, sha256: sha256(fixture.bytes!) });
        const parts: Buffer[] = [];
        for (let start = 0; start < fixture.size; start += MAX_RESPONSE_BYTES) {
          const got = await call('GET', `/files/${fixture.id}/content`, { authorization: validAuth(fixture.owner), range: `bytes=${start}-` });
          expect(got.status).toBe(206);
          parts.push(got.body);
        }
        expect(Buffer.concat(parts).equals(fixture.bytes!)).toBe(true);
      }
    }
    // Nothing the fuzzing did made the product log a failure of its own.
    expect(stack.product.output()).not.toMatch(/"level":"ERROR"|answered with the catalogue's error/);
  });
});
