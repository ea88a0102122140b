/**
 * `npm run token -- <subject> [lifetime]`: a development bearer token for another caller than
 * the banner's `dev-user` (to see that one owner's files are invisible to another), signed as
 * `npm start`'s callers are: with STORAGE_AUTH_JWT_SECRET, else the local secret npm start
 * generated. Lifetime as jose reads it (`1h`, `30m`; default 1h, at most the configured longest).
 * Refuses where an identity provider (STORAGE_AUTH_JWKS_URL) issues the tokens.
 */
import { localBearerToken } from './local/dev-token.ts';
import { loadLocalEnv } from './local/dot-env.ts';

const [sub, lifetime = '1h'] = process.argv.slice(2);
loadLocalEnv();
if (sub === undefined || sub.trim() === '') {
  process.stderr.write('usage: npm run token -- <subject> [lifetime, e.g. 1h]\n');
  process.exit(1);
}
if (process.env.STORAGE_AUTH_JWKS_URL) {
  process.stderr.write('token: STORAGE_AUTH_JWKS_URL is set, so tokens come from that identity provider, not from here\n');
  process.exit(1);
}
process.stdout.write(`${await localBearerToken(sub, lifetime)}\n`);
