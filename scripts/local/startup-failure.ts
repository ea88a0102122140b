/**
 * What a local command prints when it cannot start: one line that names the cause and the
 * variable to change, never a stack. Everything a person can get wrong before the first request
 * (a value, a stopped MinIO, a port in use, keys or a certificate the server refuses) is named.
 */
import { ConfigError } from '../../lib/config.ts';

interface ErrorShape {
  name?: string;
  code?: string;
  message?: string;
  port?: number;
  cause?: ErrorShape;
  $metadata?: { httpStatusCode?: number };
}

const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name does not resolve',
  ETIMEDOUT: 'no answer',
  TimeoutError: 'no answer',
  EHOSTUNREACH: 'host unreachable',
  ECONNRESET: 'the connection was reset',
};
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;
const NOT_TLS = new Set(['EPROTO', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG']);
const REFUSED_KEYS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken']);

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error as ErrorShape | undefined, depth = 0; e && depth < 4; e = e.cause, depth += 1) {
    if (e.code) codes.push(e.code);
    if (e.name) codes.push(e.name);
  }
  return codes;
}

/** The one line for `error`; `ports` names the variable behind each port this command listens on. */
export function startupFailureLine(error: unknown, context: { endpoint?: string; ports?: Record<number, string> } = {}): string {
  if (error instanceof ConfigError) {
    return error.message.replace(/^Invalid storage configuration:\n\s*/, 'Invalid configuration: ').replace(/\n\s*/g, '; ');
  }
  const codes = codesOf(error);
  const where = context.endpoint ? `the storage server at ${context.endpoint}` : 'the storage server';
  const has = (test: (code: string) => boolean) => codes.some(test);
  const e = error as ErrorShape;
  if (has((c) => c === 'EADDRINUSE')) {
    const port = e.port ?? e.cause?.port;
    const variable = port === undefined ? undefined : context.ports?.[port];
    return `Port ${port ?? '(unknown)'} is already in use${variable ? ` (${variable})` : ''}: stop what listens there or choose another port.`;
  }
  if (has((c) => UNTRUSTED.test(c))) {
    return `Cannot trust the TLS certificate of ${where} (STORAGE_CA_FILE names the CA that signed it; STORAGE_SECURE=false for plain http).`;
  }
  if (has((c) => NOT_TLS.has(c))) {
    return `${where[0]!.toUpperCase()}${where.slice(1)} does not speak TLS: set STORAGE_SECURE=false (or an http:// STORAGE_ENDPOINT).`;
  }
  const unreachable = codes.find((c) => c in UNREACHABLE);
  if (unreachable) {
    return `Cannot reach ${where}: ${UNREACHABLE[unreachable]} (STORAGE_ENDPOINT, STORAGE_PORT). Is it running? \`npm run minio\` starts one.`;
  }
  if (has((c) => REFUSED_KEYS.has(c))) {
    return `The storage server refused the credentials (STORAGE_ACCESS_KEY, STORAGE_SECRET_KEY).`;
  }
  if (has((c) => c === 'CredentialsProviderError')) {
    return `No credentials for ${where}: set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY.`;
  }
  if (has((c) => c === 'AccessDenied')) {
    return `The storage server denied access to the buckets (STORAGE_ACCESS_KEY may lack permission, or STORAGE_BUCKET belongs to someone else).`;
  }
  const first = (e?.message ?? String(error)).split('\n')[0];
  return `Failed to start: ${e?.name && e.name !== 'Error' ? `${e.name}: ` : ''}${first}`;
}

/** Runs `parse`, and on a configuration error prints its one line and exits 2. */
export function failOnConfigError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${startupFailureLine(error)}\n`);
    process.exit(2);
  }
}
