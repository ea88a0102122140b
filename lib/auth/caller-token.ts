import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { ConfigError, type StorageConfig } from '../config.ts';
import { IdentityProviderUnavailableError, UnauthorizedError } from '../errors/catalogue.ts';

/**
 * Callers name themselves with `Authorization: Bearer <JWT>`; the owner of everything a call
 * touches is the token's `sub`. Two modes, never both at once, so a leaked development secret
 * opens nothing where a real identity provider is configured:
 *
 * - `STORAGE_AUTH_JWKS_URL` set: only RS256/ES256 tokens signed by a key the provider publishes
 *   there (Cognito, Auth0, Keycloak…). Its key set is fetched once per process and refetched when
 *   a token names an unknown `kid` (at most once per jose's cooldown), so a rotated key works
 *   without a restart. A provider we cannot read is our problem, not the caller's: 503.
 * - unset (development): HS256 with `STORAGE_AUTH_JWT_SECRET`.
 *
 * Either way `exp` and `sub` are required and a token may not live longer than
 * `STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS`: a well-signed token leaked from a log must not open
 * the recordings for years. Issuer and audience are checked whenever they are configured.
 * Refusals are 401 with a fixed reason that never repeats the token.
 */

const operation = 'authenticate';
const ASYMMETRIC = ['RS256', 'ES256'];
const SHARED_SECRET = ['HS256'];

export type CallerTokenConfig = Pick<StorageConfig, 'auth' | 'jwtSecret'>;

// One remote key set per URL for the life of the process: jose keeps the fetched keys, their
// cooldown and any fetch in flight there, so building it per request would fetch per request.
const keySets = new Map<string, JWTVerifyGetKey>();

function providerKeys(url: URL): JWTVerifyGetKey {
  let keySet = keySets.get(url.href);
  if (keySet === undefined) {
    const remote = createRemoteJWKSet(url);
    keySet = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        // Only these two are about the token; everything else (refused, timed out, 5xx, not JSON,
        // not a key set) means the provider cannot be read, whatever the token is.
        if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) throw error;
        throw new IdentityProviderUnavailableError('The identity provider key set could not be read.', {
          operation,
          cause: error,
          details: { code: (error as { code?: string }).code, jwksHost: url.host, reason: (error as Error).message },
        });
      }
    };
    keySets.set(url.href, keySet);
  }
  return keySet;
}

async function verifyWithProvider(token: string, url: URL, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, providerKeys(url), options)).payload;
  } catch (error) {
    if (!(error instanceof joseErrors.JWKSMultipleMatchingKeys)) throw error;
    // A token without `kid` while the provider publishes several keys of its kind (mid-rotation):
    // any one of them may have signed it.
    let failure: unknown = error;
    for await (const key of error) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (attempt) {
        if (!(attempt instanceof joseErrors.JWSSignatureVerificationFailed)) throw attempt;
        failure = attempt;
      }
    }
    throw failure;
  }
}

function refusal(reason: string, details: Record<string, unknown> = {}): UnauthorizedError {
  return new UnauthorizedError(reason, { operation, details });
}

const CLAIM_REASONS: Record<string, string> = {
  exp: 'The token has no expiry (exp).',
  sub: 'The token has no subject (sub).',
  iss: 'The token was issued by another issuer.',
  aud: 'The token was issued for another audience.',
  nbf: 'The token is not valid yet.',
};

/** The caller's fault, in a fixed sentence: jose's own message may quote claims, and never reaches the caller. */
function asRefusal(error: unknown): Error {
  if (error instanceof IdentityProviderUnavailableError) return error;
  const code = (error as { code?: string }).code;
  if (error instanceof joseErrors.JWTExpired) return refusal('The token has expired.', { code });
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return refusal(CLAIM_REASONS[error.claim] ?? 'The token is not valid.', { code, claim: error.claim, check: error.reason });
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return refusal('The token is signed with an algorithm this API does not accept.', { code });
  if (error instanceof joseErrors.JWKSNoMatchingKey) return refusal('The token is signed by a key the identity provider does not publish.', { code });
  return refusal('The token is not valid.', { code });
}

/** Lifetime rules jose leaves to us: it checks that `exp` has not passed, not how far away it is. */
function checkLifetime(payload: JWTPayload, auth: StorageConfig['auth']): void {
  const now = Math.floor(Date.now() / 1000);
  const skew = auth.clockSkewSeconds;
  if (payload.iat !== undefined && payload.iat > now + skew) throw refusal('The token is issued in the future.', { claim: 'iat' });
  const lifetime = payload.exp! - (payload.iat ?? now);
  if (lifetime > auth.maxTokenLifetimeSeconds + skew) {
    throw refusal('The token lives longer than this API allows.', { claim: 'exp', lifetime, max: auth.maxTokenLifetimeSeconds });
  }
}

export async function ownerFromAuthorization(header: string | undefined, config: CallerTokenConfig): Promise<string> {
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) {
    throw new UnauthorizedError('An Authorization: Bearer <token> header is required.', { operation });
  }
  const { auth } = config;
  const options: JWTVerifyOptions = {
    algorithms: auth.jwksUrl === undefined ? SHARED_SECRET : ASYMMETRIC,
    requiredClaims: ['exp', 'sub'],
    clockTolerance: auth.clockSkewSeconds,
    ...(auth.issuer !== undefined && { issuer: auth.issuer }),
    ...(auth.audience !== undefined && auth.audience.length > 0 && { audience: auth.audience }),
  };
  // The HTTP middleware has read the secret for this mode already (lib/secret-parameters.ts).
  if (auth.jwksUrl === undefined && config.jwtSecret === undefined) throw new ConfigError('STORAGE_AUTH_JWT_SECRET is not available');
  let payload: JWTPayload;
  try {
    payload =
      auth.jwksUrl === undefined
        ? (await jwtVerify(match[1], config.jwtSecret!, options)).payload
        : await verifyWithProvider(match[1], auth.jwksUrl, options);
  } catch (error) {
    throw asRefusal(error);
  }
  checkLifetime(payload, auth);
  if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
    throw refusal('The token has no subject (sub).', { claim: 'sub' });
  }
  return payload.sub;
}
