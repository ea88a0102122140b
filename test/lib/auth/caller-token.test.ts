import { createPublicKey, randomBytes } from 'node:crypto';
import { exportSPKI, SignJWT, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ownerFromAuthorization, type CallerTokenConfig } from '../../../lib/auth/caller-token.ts';
import { ConfigError } from '../../../lib/config.ts';
import { IdentityProviderUnavailableError, UnauthorizedError } from '../../../lib/errors/catalogue.ts';
import { renderError } from '../../../lib/http/error-response.ts';
import { signBearerToken } from '../../../scripts/local/dev-token.ts';
import { providerKey, providerToken, startJwksServer, type JwksServer, type ProviderKey } from '../../support/jwks-server.ts';

/**
 * Callers' bearer tokens against a real JWKS endpoint (node:http on 127.0.0.1) with keys made by
 * jose, in both modes: an identity provider's RS256/ES256 keys, or the development HS256 secret.
 */

const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'transcribo-storage';
const secret = new TextEncoder().encode(randomBytes(32).toString('hex'));
const servers: JwksServer[] = [];
let rsa: ProviderKey;
let ec: ProviderKey;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([providerKey('RS256'), providerKey('ES256')]);
});
afterEach(() => void vi.useRealTimers());
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** Each test gets a provider of its own: the product keeps one key set per URL for the process. */
async function provider(keys: ProviderKey[] = [rsa, ec]): Promise<JwksServer> {
  const server = await startJwksServer(keys);
  servers.push(server);
  return server;
}

function jwksConfig(server: { url: URL }, auth: Partial<CallerTokenConfig['auth']> = {}): CallerTokenConfig {
  return {
    jwtSecret: secret,
    auth: { jwksUrl: server.url, issuer: ISSUER, audience: [AUDIENCE], clockSkewSeconds: 30, maxTokenLifetimeSeconds: 86_400, ...auth },
  };
}

const devConfig: CallerTokenConfig = {
  jwtSecret: secret,
  auth: { jwksUrl: undefined, issuer: undefined, audience: undefined, clockSkewSeconds: 30, maxTokenLifetimeSeconds: 86_400 },
};

const good = { sub: 'alice', iss: ISSUER, aud: AUDIENCE };
const now = () => Math.floor(Date.now() / 1000);
const owner = (token: string, config: CallerTokenConfig) => ownerFromAuthorization(`Bearer ${token}`, config);

/** 401 of the catalogue, with a reason that never repeats the token. */
async function expectRefused(token: string, config: CallerTokenConfig, reason?: RegExp): Promise<UnauthorizedError> {
  const error = await owner(token, config).then(
    (sub) => expect.fail(`accepted as ${sub}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UnauthorizedError);
  const refusal = error as UnauthorizedError;
  expect(refusal.status).toBe(401);
  expect(refusal.publicMessage).not.toContain(token.split('.')[1]);
  expect(JSON.stringify(refusal.details)).not.toContain(token.split('.')[1]);
  if (reason) expect(refusal.publicMessage).toMatch(reason);
  return refusal;
}

async function expectProviderDown(token: string, config: CallerTokenConfig): Promise<void> {
  const error = await owner(token, config).then(
    (sub) => expect.fail(`accepted as ${sub}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityProviderUnavailableError);
  // What the operators' log gets: which step, which provider, and the provider's own failure.
  const down = error as IdentityProviderUnavailableError;
  expect(down.operation).toBe('authenticate');
  expect(down.message).toMatch(/identity provider key set/);
  expect(down.details).toMatchObject({ jwksHost: config.auth.jwksUrl!.host, reason: expect.any(String) });
  expect(down.cause).toBeDefined();
  const rendered = renderError(error as IdentityProviderUnavailableError, 'req-1');
  expect(rendered.statusCode).toBe(503);
  const body = JSON.parse(rendered.body as string);
  expect(body.error.type).toBe('IdentityProviderUnavailableError');
  expect(body.error.message).toMatch(/identity provider/);
  // Neither the provider's address nor its own words reach the caller.
  expect(rendered.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|fetch failed|exploded|JSON|200 OK/);
}

describe('caller tokens from an identity provider (JWKS)', () => {
  it('accepts a good RS256 token: the owner is its sub', async () => {
    const server = await provider();
    expect(await owner(await providerToken(rsa, { claims: good }), jwksConfig(server))).toBe('alice');
  });

  it('accepts a good ES256 token', async () => {
    const server = await provider();
    expect(await owner(await providerToken(ec, { claims: { ...good, sub: 'bob' } }), jwksConfig(server))).toBe('bob');
  });

  it('fetches the key set once per process, not per request', async () => {
    const server = await provider();
    const config = jwksConfig(server);
    for (let i = 0; i < 5; i++) await owner(await providerToken(rsa, { claims: good }), config);
    expect(server.fetches).toBe(1);
  });

  it('refuses another issuer (401)', async () => {
    const server = await provider();
    await expectRefused(await providerToken(rsa, { claims: { ...good, iss: 'https://evil.example.test/' } }), jwksConfig(server), /issuer/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, iss: undefined } }), jwksConfig(server));
  });

  it('refuses another audience, or none (401)', async () => {
    const server = await provider();
    await expectRefused(await providerToken(rsa, { claims: { ...good, aud: 'another-api' } }), jwksConfig(server), /audience/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, aud: undefined } }), jwksConfig(server), /audience/);
  });

  it('accepts a token when any one of the configured audiences matches', async () => {
    const server = await provider();
    const config = jwksConfig(server, { audience: ['web-app', AUDIENCE, 'mobile-app'] });
    expect(await owner(await providerToken(rsa, { claims: { ...good, aud: ['account', 'mobile-app'] } }), config)).toBe('alice');
    await expectRefused(await providerToken(rsa, { claims: { ...good, aud: ['account'] } }), config, /audience/);
  });

  it('takes a rotated key without a restart, and drops the removed one (after jose\'s 30 s cooldown)', async () => {
    const server = await provider([rsa]);
    const config = jwksConfig(server);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    expect(await owner(await providerToken(rsa, { claims: good }), config)).toBe('alice');
    const fresh = await providerKey('RS256');
    const byOld = await providerToken(rsa, { claims: good });
    const byNew = await providerToken(fresh, { claims: { ...good, sub: 'carol' } });
    server.keys = [fresh];

    // Right after a fetch, an unknown kid does not make the product fetch again: no flood on the provider.
    await expectRefused(byNew, config, /key/);
    expect(server.fetches).toBe(1);

    vi.setSystemTime(Date.now() + 31_000);
    expect(await owner(byNew, config)).toBe('carol');
    expect(server.fetches).toBe(2);
    await expectRefused(byOld, config, /key/);
  });

  it('refuses a kid the provider does not publish (401)', async () => {
    const server = await provider();
    const stranger = await providerKey('RS256');
    await expectRefused(await providerToken(stranger, { claims: good }), jwksConfig(server), /key/);
    // Same kid as a published key, other private key: the signature decides.
    await expectRefused(await providerToken({ ...stranger, kid: rsa.kid }, { claims: good }), jwksConfig(server));
  });

  it('accepts a token without kid by whichever published key signed it (several keys of its kind)', async () => {
    const other = await providerKey('RS256');
    const server = await provider([other, rsa, ec]);
    expect(await owner(await providerToken(rsa, { claims: good, kid: null }), jwksConfig(server))).toBe('alice');
    const stranger = await providerKey('RS256');
    await expectRefused(await providerToken(stranger, { claims: good, kid: null }), jwksConfig(server));
  });

  it('refuses alg confusion: HS256 keyed with the RSA public key (401)', async () => {
    const server = await provider();
    const config = jwksConfig(server);
    const pem = await exportSPKI(rsa.publicKey);
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    for (const bytes of [new TextEncoder().encode(pem), new Uint8Array(der), new TextEncoder().encode(JSON.stringify(rsa.jwk))]) {
      const forged = await new SignJWT({ ...good, iat: now(), exp: now() + 600 }).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(bytes);
      await expectRefused(forged, config, /algorithm/);
    }
  });

  it('refuses an HS256 token with the shared secret while a provider is configured (401)', async () => {
    const server = await provider();
    await expectRefused(await signBearerToken(secret, 'alice', '10m'), jwksConfig(server), /algorithm/);
    await expectRefused(await signBearerToken(secret, 'alice', '10m'), jwksConfig(server, { issuer: undefined, audience: undefined }), /algorithm/);
  });

  it('refuses a token without exp (401)', async () => {
    const server = await provider();
    await expectRefused(await providerToken(rsa, { claims: { ...good, exp: undefined } }), jwksConfig(server), /exp/);
  });

  it('refuses a token valid for 100 years (401), or for longer than the limit without iat', async () => {
    const server = await provider();
    const century = await providerToken(rsa, { claims: { ...good, exp: now() + 100 * 365 * 86_400 } });
    await expectRefused(century, jwksConfig(server), /longer/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, iat: undefined, exp: now() + 2 * 86_400 } }), jwksConfig(server), /longer/);
    // Just inside the limit (plus the skew) is fine, iat or not.
    expect(await owner(await providerToken(rsa, { claims: { ...good, iat: undefined, exp: now() + 86_400 } }), jwksConfig(server))).toBe('alice');
    expect(await owner(await providerToken(rsa, { claims: { ...good, iat: now() - 20, exp: now() + 86_400 } }), jwksConfig(server))).toBe('alice');
    expect(await owner(century, jwksConfig(server, { maxTokenLifetimeSeconds: 101 * 365 * 86_400 }))).toBe('alice');
  });

  it('refuses a token issued a year in the future (401)', async () => {
    const server = await provider();
    const year = 365 * 86_400;
    await expectRefused(await providerToken(rsa, { claims: { ...good, iat: now() + year, exp: now() + year + 600 } }), jwksConfig(server), /future/);
  });

  it('tolerates the configured clock skew, and no more', async () => {
    const server = await provider();
    const config = jwksConfig(server);
    expect(await owner(await providerToken(rsa, { claims: { ...good, iat: now() - 600, exp: now() - 10 } }), config)).toBe('alice');
    expect(await owner(await providerToken(rsa, { claims: { ...good, iat: now() + 10, nbf: now() + 10 } }), config)).toBe('alice');
    await expectRefused(await providerToken(rsa, { claims: { ...good, iat: now() - 600, exp: now() - 60 } }), config, /expired/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, nbf: now() + 120 } }), config, /not valid yet/);
  });

  it('requires a subject of at most 256 characters (401)', async () => {
    const server = await provider();
    await expectRefused(await providerToken(rsa, { claims: { ...good, sub: undefined } }), jwksConfig(server), /sub/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, sub: '' } }), jwksConfig(server), /sub/);
    await expectRefused(await providerToken(rsa, { claims: { ...good, sub: 'x'.repeat(257) } }), jwksConfig(server), /sub/);
  });

  it('answers 503 IdentityProviderUnavailableError when the provider is down, failing or not JSON', async () => {
    // Down as a crashed provider is: the connection dropped. (A closed port could be taken by another test's server meanwhile.)
    const gone = await provider();
    gone.mode = 'down';
    const token = await providerToken(rsa, { claims: good });
    await expectProviderDown(token, jwksConfig(gone));

    const failing = await provider();
    failing.mode = 'error';
    await expectProviderDown(token, jwksConfig(failing));
    failing.mode = 'html';
    await expectProviderDown(token, jwksConfig(failing));
    // Back up: the next call fetches again and the same token is good.
    failing.mode = 'json';
    expect(await owner(token, jwksConfig(failing))).toBe('alice');
  });

  it('refuses a missing or malformed header (401) without asking the provider', async () => {
    const server = await provider();
    await expect(ownerFromAuthorization(undefined, jwksConfig(server))).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(ownerFromAuthorization('Basic abc', jwksConfig(server))).rejects.toBeInstanceOf(UnauthorizedError);
    await expectRefused('a.b.c', jwksConfig(server));
    expect(server.fetches).toBe(0);
  });
});

describe('caller tokens in development (HS256, no JWKS URL)', () => {
  it('accepts an HS256 token with the shared secret, as the dev token helper makes it', async () => {
    expect(await owner(await signBearerToken(secret, 'dev-user'), devConfig)).toBe('dev-user');
  });

  it('refuses one without exp, or living too long (401)', async () => {
    const noExp = await new SignJWT({ sub: 'dev-user' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(secret);
    await expectRefused(noExp, devConfig, /exp/);
    await expectRefused(await signBearerToken(secret, 'dev-user', '100y'), devConfig, /longer/);
  });

  it('refuses another secret, and a provider-signed token (401)', async () => {
    await expectRefused(await signBearerToken(randomBytes(32), 'dev-user'), devConfig);
    await expectRefused(await providerToken(rsa, { claims: good }), devConfig, /algorithm/);
  });

  it('checks issuer and audience here too when they are configured', async () => {
    const config: CallerTokenConfig = { ...devConfig, auth: { ...devConfig.auth, audience: [AUDIENCE] } };
    await expectRefused(await signBearerToken(secret, 'dev-user'), config, /audience/);
    const withAud = await new SignJWT({ sub: 'dev-user', aud: AUDIENCE }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(secret);
    expect(await owner(withAud, config)).toBe('dev-user');
  });
});

describe('refusals: what the caller is told and what the log keeps', () => {
  const devToken = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(secret);

  it('names the failed check in details (code, claim) and the step as authenticate', async () => {
    const expired = await expectRefused(await devToken({ sub: 'a', iat: now() - 600, exp: now() - 60 }), devConfig, /expired/);
    expect(expired.operation).toBe('authenticate');
    expect(expired.details).toEqual({ code: 'ERR_JWT_EXPIRED' });

    const alg = await expectRefused(await providerToken(rsa, { claims: good }), devConfig, /algorithm/);
    expect(alg.details).toEqual({ code: 'ERR_JOSE_ALG_NOT_ALLOWED' });

    const forged = await expectRefused(await signBearerToken(randomBytes(32), 'dev-user'), devConfig, /^The token is not valid\.$/);
    expect(forged.details).toEqual({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });

    const config: CallerTokenConfig = { ...devConfig, auth: { ...devConfig.auth, audience: [AUDIENCE] } };
    const aud = await expectRefused(await devToken({ sub: 'a', aud: 'other', exp: now() + 60 }), config, /audience/);
    expect(aud.details).toEqual({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud', check: 'check_failed' });
  });

  it('refuses a claim of the wrong type with the generic reason', async () => {
    // jose fails a non-numeric iat as a claim it has no sentence for here.
    const refusal = await expectRefused(await devToken({ sub: 'a', iat: 'yesterday' as unknown as number, exp: now() + 60 }), devConfig, /^The token is not valid\.$/);
    expect(refusal.details).toEqual({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iat', check: 'invalid' });
  });

  it('refuses a key the provider does not publish with its own reason and code', async () => {
    const server = await provider();
    const refusal = await expectRefused(await providerToken(await providerKey('ES256'), { claims: good }), jwksConfig(server), /does not publish/);
    expect(refusal.details).toEqual({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  it('without kid, a claim failure under the key that signed it is that failure, not "no key fits"', async () => {
    // The signing key comes first: the later keys must not turn "expired" into a signature failure.
    const other = await providerKey('RS256');
    const server = await provider([rsa, other]);
    const expired = await providerToken(rsa, { claims: { ...good, iat: now() - 600, exp: now() - 120 }, kid: null });
    expect((await expectRefused(expired, jwksConfig(server), /expired/)).details).toEqual({ code: 'ERR_JWT_EXPIRED' });
    const stranger = await providerToken(await providerKey('RS256'), { claims: good, kid: null });
    expect((await expectRefused(stranger, jwksConfig(server))).details).toEqual({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });
});

describe('token lifetime and clock skew, to the second (frozen clock)', () => {
  const T = 1_900_000_000;
  const devToken = (claims: JWTPayload) => new SignJWT({ sub: 'dev-user', ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(secret);
  const skew = devConfig.auth.clockSkewSeconds;
  const max = devConfig.auth.maxTokenLifetimeSeconds;
  const frozen = () => vi.useFakeTimers({ toFake: ['Date'], now: T * 1000 });

  it('accepts iat up to the skew ahead of our clock, and refuses one second more', async () => {
    frozen();
    expect(await owner(await devToken({ iat: T + skew, exp: T + skew + 600 }), devConfig)).toBe('dev-user');
    const refusal = await expectRefused(await devToken({ iat: T + skew + 1, exp: T + skew + 600 }), devConfig, /future/);
    expect(refusal.details).toEqual({ claim: 'iat' });
  });

  it('accepts a lifetime of the maximum plus the skew, and refuses one second more', async () => {
    frozen();
    expect(await owner(await devToken({ iat: T, exp: T + max + skew }), devConfig)).toBe('dev-user');
    const refusal = await expectRefused(await devToken({ iat: T, exp: T + max + skew + 1 }), devConfig, /longer/);
    expect(refusal.details).toEqual({ claim: 'exp', lifetime: max + skew + 1, max });
  });

  it('counts the lifetime of a token without iat from now', async () => {
    frozen();
    expect(await owner(await devToken({ exp: T + max + skew }), devConfig)).toBe('dev-user');
    await expectRefused(await devToken({ exp: T + max + skew + 1 }), devConfig, /longer/);
  });
});

describe('the subject', () => {
  const devToken = (sub: unknown) => new SignJWT({ sub } as JWTPayload).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(secret);

  it('takes a subject of exactly 256 characters', async () => {
    expect(await owner(await devToken('x'.repeat(256)), devConfig)).toBe('x'.repeat(256));
  });

  it('refuses a subject that is not a string (jose does not check its type)', async () => {
    for (const sub of [42, ['alice'], { id: 'alice' }, true]) {
      const refusal = await expectRefused(await devToken(sub), devConfig, /sub/);
      expect(refusal.details).toEqual({ claim: 'sub' });
    }
  });
});

describe('the Authorization header', () => {
  it('takes the scheme in any case, any run of whitespace after it, and trailing whitespace', async () => {
    const token = await signBearerToken(secret, 'dev-user');
    for (const header of [`bearer ${token}`, `BEARER  ${token}`, `Bearer\t${token}`, `Bearer ${token}  `, `Bearer ${token}\t`]) {
      expect(await ownerFromAuthorization(header, devConfig), JSON.stringify(header)).toBe('dev-user');
    }
  });

  it('refuses anything around the token other than whitespace, asking for a bearer token', async () => {
    const token = await signBearerToken(secret, 'dev-user');
    const headers = [undefined, '', token, `Basic ${token}`, `xBearer ${token}`, `Token Bearer ${token}`, `Bearer ${token} extra`, `Bearer ${token}!`, `Bearer ${token}.x`, `Bearer${token}`];
    for (const header of headers) {
      const error = await ownerFromAuthorization(header, devConfig).then(
        (sub) => expect.fail(`${JSON.stringify(header)} accepted as ${sub}`),
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(header)).toBeInstanceOf(UnauthorizedError);
      expect((error as UnauthorizedError).publicMessage).toBe('An Authorization: Bearer <token> header is required.');
      expect((error as UnauthorizedError).operation).toBe('authenticate');
    }
  });
});

describe('configuration', () => {
  it('is a configuration error naming STORAGE_AUTH_JWT_SECRET when development mode has no secret', async () => {
    const config: CallerTokenConfig = { ...devConfig, jwtSecret: undefined };
    await expect(owner(await signBearerToken(secret, 'dev-user'), config)).rejects.toThrow(ConfigError);
    await expect(owner(await signBearerToken(secret, 'dev-user'), config)).rejects.toThrow(/STORAGE_AUTH_JWT_SECRET/);
  });

  it('needs no shared secret when an identity provider is configured', async () => {
    const server = await provider();
    expect(await owner(await providerToken(rsa, { claims: good }), { ...jwksConfig(server), jwtSecret: undefined })).toBe('alice');
  });

  it('checks no audience when the configured list is empty', async () => {
    // STORAGE_AUTH_AUDIENCE=',' reads as an empty list: no audience was meant to be checked.
    const config: CallerTokenConfig = { ...devConfig, auth: { ...devConfig.auth, audience: [] } };
    expect(await owner(await signBearerToken(secret, 'dev-user'), config)).toBe('dev-user');
    expect(await owner(await signBearerToken(secret, 'dev-user', '1h', { audience: 'anything' }), config)).toBe('dev-user');
  });
});
