import { SignJWT } from 'jose';
import { loadOrCreateDevSecrets } from './dev-secrets.ts';

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

/**
 * A token for `sub` as a local run's callers get one: signed with STORAGE_AUTH_JWT_SECRET, else
 * the secret `npm start` generated into .local/dev-secrets.json, with the configured issuer and
 * first audience (npm run try, npm run token).
 */
export async function localBearerToken(sub: string, expiresIn: string): Promise<string> {
  return signBearerToken(process.env.STORAGE_AUTH_JWT_SECRET || (await loadOrCreateDevSecrets()).jwtSecret, sub, expiresIn, {
    issuer: process.env.STORAGE_AUTH_ISSUER || undefined,
    audience: process.env.STORAGE_AUTH_AUDIENCE?.split(',')[0]?.trim() || undefined,
  });
}
