import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CONFIG_NAMES, parseConfig, settingDocs } from '../../lib/config.ts';
import { envExample, readmeWithTable } from '../../scripts/config-docs.ts';

/** .env.example and the README's table are written from lib/config.ts; stale, they fail here. */

const root = resolve(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(resolve(root, file), 'utf8');

describe('npm run config:docs', () => {
  it('has written .env.example from the schema as it is now (else: npm run config:docs)', () => {
    expect(read('.env.example')).toBe(envExample());
  });

  it("has written the README's configuration table from the schema as it is now (else: npm run config:docs)", () => {
    const readme = read('README.md');
    expect(readme).toBe(readmeWithTable(readme));
    for (const name of CONFIG_NAMES) expect(readme).toContain(`| \`${name}\` |`);
  });

  it('lists every setting in .env.example at its default, commented out, so a copied .env changes nothing', () => {
    const text = read('.env.example');
    expect(Object.keys(parseEnv(text))).toEqual([]);
    const uncommented = Object.fromEntries(
      [...text.matchAll(/^# (STORAGE_[A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    expect(Object.keys(uncommented).sort()).toEqual([...CONFIG_NAMES].sort());
    for (const setting of settingDocs()) expect(uncommented[setting.name], setting.name).toBe(setting.defaultValue ?? '');
    // Every default, written out and read back, is the default.
    expect(parseConfig({ ...uncommented, STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_KEYS: `k:${'A'.repeat(43)}=` })).toEqual(
      parseConfig({ STORAGE_AUTH_JWT_SECRET: 'x'.repeat(32), STORAGE_ENCRYPTION_KEYS: `k:${'A'.repeat(43)}=` }),
    );
  });
});
