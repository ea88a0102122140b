/**
 * A last line of defence for the logs: whatever a log call is handed, keys, secrets,
 * tokens, presigned-URL signatures and file bytes never reach the output. Code should not
 * log them in the first place; this catches the mistake when it does.
 */

// Field names that hold a secret whatever their value looks like; a name that only mentions a key
// (objectKey, keyId) is kept, a key that is one (apiKey, x-api-key, privateKey) is not.
const SECRET_KEY =
  /(secret|password|passphrase|token|authorization|cookie|jwt|signature|credential|(wrapped|data|api|private|access|encryption|hmac|signing|master)[-_ ]?key|x-amz-security|policy|^key$|^keys$)/i;
const SIGNED_QUERY = /([?&])(X-Amz-(Signature|Credential|Security-Token)|Signature|AWSAccessKeyId|token)=[^&\s"']*/gi;
// The token check accepts the scheme in any case (RFC 9110: schemes are case-insensitive), so does this.
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
// A SigV4 Authorization header value: `AWS4-HMAC-SHA256 Credential=AKIA…/…, SignedHeaders=…, Signature=…`.
const SIGV4_FIELDS = /\b(Credential|Signature)=[^,&\s"']+/gi;

export const REDACTED = '[redacted]';

export function redactString(value: string): string {
  return value
    .replace(SIGNED_QUERY, `$1$2=${REDACTED}`)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(SIGV4_FIELDS, `$1=${REDACTED}`);
}

/** JSON replacer: applied by the logger to every key and value it serialises. */
export function redactingReplacer(key: string, value: unknown): unknown {
  if (key !== '' && SECRET_KEY.test(key) && value !== undefined && value !== null && typeof value !== 'object') {
    return REDACTED;
  }
  if (typeof value === 'string') return redactString(value);
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  // Buffer.toJSON runs before the replacer sees a Buffer: catch its serialised shape too.
  if (value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return `[${(value as { data: unknown[] }).data.length} bytes]`;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}
