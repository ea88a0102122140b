import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The README's commands run on a machine whose own Node is older than the product's: each goes
 * through an npm script (which puts the Node 24 devDependency first on PATH) or npx, never a bare
 * `node scripts/….ts`, and each npm script it names exists.
 */

const root = resolve(import.meta.dirname, '..', '..');
const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
const scripts = Object.keys(JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')).scripts as Record<string, string>);
const shellBlocks = [...readme.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]!);
const inlineCode = [...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);

describe('the README', () => {
  it('shows no command that needs the machine to run TypeScript with its own Node', () => {
    expect(shellBlocks.length).toBeGreaterThan(2);
    for (const text of [...shellBlocks, ...inlineCode]) expect(text, text).not.toMatch(/(^|[\s;&|(])node\s+\S+\.ts\b/m);
  });

  it('names only npm scripts that exist', () => {
    const named = new Set([...[...shellBlocks, ...inlineCode].join('\n').matchAll(/npm run (?:-s )?([a-z][\w:-]*)/g)].map((m) => m[1]!));
    expect(named.size).toBeGreaterThan(4);
    expect([...named].filter((name) => !scripts.includes(name))).toEqual([]);
  });
});
