import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/**
 * An identity provider as the product sees one: a JWKS document over HTTP on 127.0.0.1 (a
 * random port), whose keys a test swaps to rotate them, or whose answers it breaks.
 */

export interface ProviderKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key as the JWKS publishes it. */
  jwk: JWK;
}

export async function providerKey(alg: 'RS256' | 'ES256', kid = randomUUID()): Promise<ProviderKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, publicKey, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface JwksServer {
  url: URL;
  /** The keys served from now on. */
  keys: ProviderKey[];
  /** `json`: the key set; `error`: 500; `html`: 200 with a page that is not JSON; `down`: the connection dropped unanswered. */
  mode: 'json' | 'error' | 'html' | 'down';
  /** How many times the key set was asked for. */
  fetches: number;
  close(): Promise<void>;
}

export async function startJwksServer(keys: ProviderKey[]): Promise<JwksServer> {
  const state = { keys, mode: 'json' as JwksServer['mode'], fetches: 0 };
  const server = createServer((req, res) => {
    state.fetches += 1;
    if (state.mode === 'down') req.socket.destroy();
    else if (state.mode === 'error') res.writeHead(500, { 'content-type': 'text/plain' }).end('upstream exploded');
    else if (state.mode === 'html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

export interface TokenOptions {
  /** Claims to set; `exp`/`iat` default to now + 10 min / now, `undefined` leaves a claim out. */
  claims?: JWTPayload;
  /** `null` sends no kid. */
  kid?: string | null;
}

/** A token signed by one of the provider's keys, as the provider would issue it. */
export function providerToken(key: ProviderKey, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = { iat: now, exp: now + 600, ...options.claims };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  const kid = options.kid === undefined ? key.kid : options.kid;
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, ...(kid !== null && { kid }) }).sign(key.privateKey);
}
