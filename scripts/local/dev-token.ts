import { SignJWT } from 'jose';

/**
 * A bearer token the way the product's callers present them (HS256, owner in `sub`), for
 * local runs and tests. The product itself only verifies tokens (lib/auth/bearer-token.ts).
 */
export function signBearerToken(secret: string | Uint8Array, sub: string, expiresIn = '12h'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);
}
