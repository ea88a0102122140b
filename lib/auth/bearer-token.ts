import { errors as joseErrors, jwtVerify } from 'jose';
import { UnauthorizedError } from '../errors/catalogue.ts';

/**
 * Callers name themselves with `Authorization: Bearer <JWT>`, HS256 with the shared secret.
 * The owner of everything a call touches is the token's `sub`.
 */

const ALGORITHMS = ['HS256'];

export async function ownerFromAuthorization(header: string | undefined, secret: Uint8Array): Promise<string> {
  const operation = 'authenticate';
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) {
    throw new UnauthorizedError('An Authorization: Bearer <token> header is required.', { operation });
  }
  try {
    const { payload } = await jwtVerify(match[1], secret, { algorithms: ALGORITHMS });
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
      throw new UnauthorizedError('The token has no subject (sub).', { operation });
    }
    return payload.sub;
  } catch (error) {
    if (error instanceof UnauthorizedError) throw error;
    const reason = error instanceof joseErrors.JWTExpired ? 'The token has expired.' : 'The token is not valid.';
    throw new UnauthorizedError(reason, { operation, details: { code: (error as { code?: string }).code } });
  }
}
