import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The shape of the code, checked: no import cycle anywhere in what ships or runs it, and the
 * layers of lib/ import downwards only (the storage layer knows nothing of the pipeline or the
 * service above it). Imports are read by TypeScript's own pre-processor, type-only ones included:
 * a type cycle is still two files that cannot be understood one without the other.
 */
const root = resolve(import.meta.dirname, '../..');
const SCANNED = ['lib', 'functions', 'scripts', 'bench'];

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of SCANNED.flatMap(sources)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const local = importedFiles
      .map((f) => f.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(root, resolve(root, dirname(file), name)));
    graph.set(file, [...new Set(local)]);
  }
  return graph;
}

/** Tarjan's strongly connected components of more than one file, or of one that imports itself. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const to of graph.get(node) ?? []) {
      if (!graph.has(to)) continue;
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || graph.get(node)!.includes(node)) found.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('import graph', () => {
  const graph = importGraph();

  it('reads the imports it checks (the scan is not empty and resolves relative paths)', () => {
    expect(graph.size).toBeGreaterThan(80);
    expect(graph.get('lib/service/storage-service.ts')).toContain('lib/byte-range.ts');
  });

  it('finds a cycle where there is one (the check works)', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
  });

  it('has no import cycle in lib/, functions/, scripts/ or bench/', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('keeps the layers of lib/ importing downwards: storage knows nothing of processing or the service, processing nothing of the service', () => {
    const upward = [...graph].flatMap(([from, tos]) =>
      tos
        .filter(
          (to) =>
            (from.startsWith('lib/storage/') && (to.startsWith('lib/processing/') || to.startsWith('lib/service/'))) ||
            (from.startsWith('lib/processing/') && to.startsWith('lib/service/')) ||
            (from.startsWith('lib/') && !from.startsWith('lib/http/') && to.startsWith('lib/http/')) ||
            (from.startsWith('lib/') && to.startsWith('functions/')),
        )
        .map((to) => `${from} → ${to}`),
    );
    expect(upward).toEqual([]);
  });
});
