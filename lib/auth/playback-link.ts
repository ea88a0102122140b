import { hkdfSync } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { UnauthorizedError } from '../errors/catalogue.ts';

/**
 * Playback links: what an `<audio src>`, `<a download>`, curl or a native player uses, since
 * none of them can send a bearer header. A link is the content URL plus `?token=<JWT>`:
 *
 * - the token is HS256 over `{sub: owner, fid: fileId, aud, iat, exp}`, so it is bound to one
 *   file of one owner and expires on its own;
 * - its key is derived (HKDF) from the bearer-token secret with a label of its own, so a link
 *   token never verifies as a bearer token, nor a bearer token as a link: holding a link to one
 *   recording gives nothing else;
 * - the file is looked up again on every use, so a deleted file's links die with it.
 *
 * The token is a bearer secret for its lifetime: it travels only in the query (`token`, which
 * the log redaction knows), and the API never logs query strings.
 */

/** `POST /files/{id}/links`: how long the link should live, at most the configured maximum. */
export const linkRequestSchema = z.strictObject({ expiresIn: z.number().int().positive().optional() });

const AUDIENCE = 'transcribo:playback';
const ALGORITHM = 'HS256';
const operation = 'playbackLink';

export function playbackLinkKey(bearerSecret: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', bearerSecret, new Uint8Array(0), 'transcribo playback link v1', 32));
}

export interface SignedLink {
  token: string;
  expiresAt: Date;
}

export async function signPlaybackLink(key: Uint8Array, owner: string, fileId: string, expiresInSeconds: number): Promise<SignedLink> {
  const issuedAt = Math.floor(Date.now() / 1000);
  const expiresAt = issuedAt + expiresInSeconds;
  const token = await new SignJWT({ fid: fileId })
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(owner)
    .setAudience(AUDIENCE)
    .setIssuedAt(issuedAt)
    .setExpirationTime(expiresAt)
    .sign(key);
  return { token, expiresAt: new Date(expiresAt * 1000) };
}

/** The owner a link speaks for, if it is valid, unexpired and made for `fileId`. */
export async function ownerFromPlaybackLink(key: Uint8Array, token: string, fileId: string): Promise<string> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], audience: AUDIENCE, requiredClaims: ['exp', 'sub', 'fid'] }));
  } catch (error) {
    const reason = error instanceof joseErrors.JWTExpired ? 'The link has expired; ask for a new one.' : 'The link is not valid.';
    throw new UnauthorizedError(reason, { operation, fileId, details: { code: (error as { code?: string }).code } });
  }
  if (payload.fid !== fileId || typeof payload.sub !== 'string' || payload.sub === '') {
    throw new UnauthorizedError('The link was made for another file.', { operation, fileId });
  }
  return payload.sub;
}
