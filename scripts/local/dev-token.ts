import { SignJWT } from 'jose';

/**
 * A bearer token the way the product's callers present them (HS256, owner in `sub`), for
 * local runs and tests. The product itself only verifies tokens (lib/auth/caller-token.ts),
 * which takes HS256 only while no STORAGE_AUTH_JWKS_URL is set and refuses a token without exp.
 */
export function signBearerToken(
  secret: string | Uint8Array,
  sub: string,
  expiresIn: string | number = '12h',
  claims: { issuer?: string | undefined; audience?: string | undefined } = {},
): Promise<string> {
  const token = new SignJWT({}).setProtectedHeader({ alg: 'HS256' });
  if (claims.issuer !== undefined) token.setIssuer(claims.issuer);
  if (claims.audience !== undefined) token.setAudience(claims.audience);
  return token
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);
}
