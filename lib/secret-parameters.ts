import { getParameter } from '@aws-lambda-powertools/parameters/ssm';
import type { MiddlewareObj } from '@middy/core';
import { ConfigError, loadConfig, provideSecrets, requireSecrets, type SecretNeed, type StorageConfig } from './config.ts';
import { StorageConnectionError } from './errors/catalogue.ts';

/**
 * Deployed, the JWT secret and the key-encryption keys are not in any function's environment:
 * the template names a Parameter Store SecureString (`STORAGE_AUTH_JWT_SECRET_PARAMETER`,
 * `STORAGE_ENCRYPTION_KEYS_PARAMETER`), and each function reads only the ones it declares it
 * needs, when a request or event arrives, through Powertools Parameters. Powertools caches a
 * value for `POWERTOOLS_PARAMETERS_MAX_AGE` seconds (the template sets 300), then fetches it
 * again, so a rotated secret reaches warm functions within minutes and no restart is needed.
 * Locally the values come from the environment or `.env` and nothing is fetched.
 */

const VARIABLES: Record<SecretNeed, { value: string; parameter: keyof StorageConfig['secretParameters'] }> = {
  jwtSecret: { value: 'STORAGE_AUTH_JWT_SECRET', parameter: 'jwtSecret' },
  encryptionKeys: { value: 'STORAGE_ENCRYPTION_KEYS', parameter: 'encryptionKeys' },
};

/** The configuration with the secrets `needs` names filled in, fetched from Parameter Store where they are kept there. */
export async function configWithSecrets(needs: readonly SecretNeed[]): Promise<StorageConfig> {
  const base = loadConfig();
  const fetched: Record<string, string> = {};
  for (const need of needs) {
    const parameter = base.secretParameters[VARIABLES[need].parameter];
    // A value in the environment (a local run) wins over a parameter.
    if (parameter === undefined || process.env[VARIABLES[need].value]) continue;
    if (need === 'encryptionKeys' && !base.encryption.enabled) continue;
    fetched[VARIABLES[need].value] = await readParameter(parameter, VARIABLES[need].value);
  }
  provideSecrets(fetched);
  const config = loadConfig();
  requireSecrets(config, needs);
  return config;
}

async function readParameter(name: string, variable: string): Promise<string> {
  let value: string | undefined;
  try {
    value = await getParameter(name, { decrypt: true });
  } catch (error) {
    // Powertools wraps the SDK's error (GetParameterError), whose cause says what happened.
    const cause = (error as { cause?: { name?: string } }).cause ?? (error as { name?: string });
    if (cause.name === 'ParameterNotFound') {
      throw new ConfigError(`Invalid storage configuration:\n  ${variable}_PARAMETER: names no Parameter Store parameter`);
    }
    // Parameter Store unreachable or refusing: not the caller's fault, and worth a retry.
    throw new StorageConnectionError('The secret store is unreachable.', {
      operation: 'readSecret',
      details: { variable, backendCode: cause.name },
      cause: error,
    });
  }
  if (!value) throw new ConfigError(`Invalid storage configuration:\n  ${variable}_PARAMETER: the parameter is empty`);
  return value;
}

/** A middy middleware that makes the secrets a function needs available before its handler runs. */
export function withSecrets<E, R, Err, C>(needs: readonly SecretNeed[] | (() => readonly SecretNeed[])): MiddlewareObj<E, R, Err, C> {
  return {
    before: async () => {
      await configWithSecrets(typeof needs === 'function' ? needs() : needs);
    },
  };
}
