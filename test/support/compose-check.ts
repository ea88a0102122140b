import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';

/**
 * Checks a docker-compose.yml the way `docker compose config` would reject it, without Docker:
 * its interpolations are well formed, it is valid against the Compose specification's JSON
 * schema (after interpolation with no variables set, as compose sees it with an empty .env),
 * and what a schema cannot say: every `depends_on` names a service, every named volume is
 * declared, every build's Dockerfile exists, and every published port is bound to 127.0.0.1
 * (a dev stack with fixed credentials must not be reachable from the network).
 *
 * Returns the problems found, one line each; none means the file passed.
 */
export function checkCompose(text: string, options: { dir: string }): string[] {
  const document = parseDocument(text);
  if (document.errors.length > 0) return document.errors.map((error) => `YAML: ${error.message}`);
  const problems: string[] = [];
  const model = interpolateAll(document.toJS(), '', problems);
  const validate = composeSchema();
  if (!validate(model)) {
    for (const error of validate.errors ?? []) problems.push(`schema: ${error.instancePath || '/'} ${error.message}${extra(error.params)}`);
    return problems;
  }
  return [...problems, ...crossReferences(model as Compose, options.dir)];
}

export function checkComposeFile(path: string): string[] {
  return checkCompose(readFileSync(path, 'utf8'), { dir: dirname(resolve(path)) });
}

function extra(params: Record<string, unknown>): string {
  if ('additionalProperty' in params) return `: "${String(params.additionalProperty)}"`;
  if ('allowedValues' in params) return `: ${JSON.stringify(params.allowedValues)}`;
  return '';
}

let compiled: ValidateFunction | undefined;

/**
 * The Compose specification's own schema, as the dclint package ships it (refreshed from
 * compose-spec/compose-spec by its maintainers; its exports map hides the file, hence the path).
 */
function composeSchema(): ValidateFunction {
  if (compiled) return compiled;
  const pkg = createRequire(import.meta.url).resolve('dclint/package.json');
  const schema = JSON.parse(readFileSync(join(dirname(pkg), 'schemas', 'compose.schema.json'), 'utf8')) as Record<string, unknown>;
  // It names the draft-07 meta-schema by an https URI Ajv does not know; draft-07 is Ajv's own default.
  delete schema.$schema;
  // The schema uses union types (`"type": ["string", "number"]`) and typeless object keywords,
  // which Ajv's strict typing only warns about; the rest of strict mode (unknown keywords) stays.
  compiled = new Ajv({ allErrors: true, allowUnionTypes: true, strictTypes: false }).compile(schema);
  return compiled;
}

// ---- Interpolation, as compose-go's template package reads it, and docker-compose 1.x's stricter `$` ----

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Interpolates every string value (not keys) with no variable set; bad templates become problems. */
function interpolateAll(value: unknown, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    const result = interpolate(value);
    if ('error' in result) {
      problems.push(`interpolation: ${path || '/'}: ${result.error} in ${JSON.stringify(value)}`);
      return value;
    }
    return result.value;
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolateAll(item, `${path}/${i}`, problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, `${path}/${key}`, problems)]));
  }
  return value;
}

type Expanded = { value: string; end: number } | { error: string };

/**
 * `$$` is a literal `$`; `$NAME` and `${NAME}` a variable; `${NAME:-default}`, `${NAME-default}`,
 * `${NAME:?error}`, `${NAME?error}`, `${NAME:+alt}`, `${NAME+alt}` with nested templates inside.
 * Any other `$` is refused: docker-compose 1.x (Debian's) rejects it ("Invalid interpolation
 * format") where Compose v2 passes it through, so only `$$` works with both for a shell's `$(...)`.
 */
export function interpolate(text: string): { value: string } | { error: string } {
  const result = expand(text, 0, false);
  return 'error' in result ? result : { value: result.value };
}

function expand(text: string, start: number, inBraces: boolean): Expanded {
  let value = '';
  let i = start;
  while (i < text.length) {
    const c = text[i]!;
    if (inBraces && c === '}') return { value, end: i + 1 };
    if (c !== '$') {
      value += c;
      i += 1;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      value += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const braced = expandBraced(text, i + 2);
      if ('error' in braced) return braced;
      value += braced.value;
      i = braced.end;
      continue;
    }
    const name = NAME.exec(text.slice(i + 1));
    if (!name) return { error: `"$" at ${i} is not followed by a name, "{" or "$" (a literal "$" is written "$$")` };
    i += 1 + name[0].length; // unset: empty
  }
  return inBraces ? { error: `"\${" at ${start - 2} is never closed` } : { value, end: i };
}

function expandBraced(text: string, start: number): Expanded {
  const name = NAME.exec(text.slice(start));
  if (!name) return { error: `"\${" at ${start - 2} is not followed by a variable name` };
  let i = start + name[0].length;
  if (text[i] === '}') return { value: '', end: i + 1 };
  const operator = ([':-', ':?', ':+', '-', '?', '+'] as const).find((op) => text.startsWith(op, i));
  if (!operator) {
    return { error: i >= text.length ? `"\${" at ${start - 2} is never closed` : `"\${${name[0]}" is followed by ${JSON.stringify(text[i])}, not "}", ":-", "-", ":?", "?", ":+" or "+"` };
  }
  i += operator.length;
  const inner = expand(text, i, true);
  if ('error' in inner) return inner;
  // No variable is set: the defaults apply, and the alternatives (`+`) and required (`?`) forms give nothing.
  return { value: operator.endsWith('-') ? inner.value : '', end: inner.end };
}

// ---- What the schema cannot say ----

interface Service {
  depends_on?: string[] | Record<string, unknown>;
  volumes?: (string | { type?: string; source?: string })[];
  build?: string | { context?: string; dockerfile?: string; dockerfile_inline?: string };
  ports?: (string | number | { host_ip?: string; published?: string | number })[];
}
interface Compose {
  services?: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function crossReferences(compose: Compose, dir: string): string[] {
  const problems: string[] = [];
  const services = compose.services ?? {};
  const volumes = new Set(Object.keys(compose.volumes ?? {}));
  for (const [name, service] of Object.entries(services)) {
    const dependencies = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
    for (const dependency of dependencies) {
      if (!(dependency in services)) problems.push(`services.${name}.depends_on: no service named "${dependency}"`);
    }

    for (const volume of service.volumes ?? []) {
      const source = typeof volume === 'string' ? namedVolumeOfShortSyntax(volume) : volume.type === 'volume' ? volume.source : undefined;
      if (source !== undefined && !volumes.has(source)) problems.push(`services.${name}.volumes: volume "${source}" is not declared under the top-level volumes`);
    }

    if (service.build !== undefined) {
      const build = typeof service.build === 'string' ? { context: service.build } : service.build;
      const context = build.context ?? '.';
      if (!/^[a-z]+:\/\/|^git@/.test(context)) {
        const contextDir = resolve(dir, context);
        if (!isDirectory(contextDir)) problems.push(`services.${name}.build.context: ${context} is not a directory`);
        else if (build.dockerfile_inline === undefined) {
          const dockerfile = build.dockerfile ?? 'Dockerfile';
          const path = isAbsolute(dockerfile) ? dockerfile : join(contextDir, dockerfile);
          if (!existsSync(path)) problems.push(`services.${name}.build.dockerfile: ${dockerfile} does not exist in ${context}`);
        }
      }
    }

    for (const port of service.ports ?? []) {
      const hostIp = typeof port === 'object' ? port.host_ip : shortPortHostIp(String(port));
      if (hostIp !== '127.0.0.1') problems.push(`services.${name}.ports: ${JSON.stringify(port)} is published on ${hostIp ?? 'every interface'}, not only 127.0.0.1`);
    }
  }
  return problems;
}

/** `SOURCE:TARGET[:MODE]`: SOURCE is a named volume unless it is a path; a bare TARGET is anonymous. */
function namedVolumeOfShortSyntax(volume: string): string | undefined {
  const parts = volume.split(':');
  if (parts.length < 2) return undefined;
  const source = parts[0]!;
  return /^[./~]/.test(source) || source.includes('/') ? undefined : source;
}

/** `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL]` or `CONTAINER_PORT`; an IPv6 host is bracketed. */
function shortPortHostIp(port: string): string | undefined {
  const spec = port.replace(/\/[a-z]+$/, '');
  const bracketed = /^\[([^\]]+)\]:/.exec(spec);
  if (bracketed) return bracketed[1];
  const parts = spec.split(':');
  return parts.length >= 3 ? parts[0] : undefined;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
