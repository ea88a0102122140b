import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkCompose, checkComposeFile, interpolate } from '../support/compose-check.ts';

/**
 * The compose checker that stands in for `docker-compose config` (no Docker here): each kind
 * of mistake it exists for is reported, alone, on a file that is otherwise valid.
 */

const root = resolve(import.meta.dirname, '..', '..');

/** Valid: built from the repo's own Dockerfile, a named and a bind volume, a healthy dependency. */
function base() {
  return {
    services: {
      api: {
        build: { context: '.', dockerfile: 'deploy/functions.Dockerfile' },
        depends_on: { store: { condition: 'service_healthy' } },
        ports: ['127.0.0.1:3000:3000', { target: 3003, published: 3003, host_ip: '127.0.0.1' }],
        volumes: ['data:/data:ro', './local:/app/.local', { type: 'volume', source: 'data', target: '/more' }],
        environment: { A: '${A:-x}', B: '$${B}', C: '${C}' },
        command: ['/bin/sh', '-c', 'echo "$${HOME:-$$(pwd)}"'],
      },
      store: {
        image: 'minio/minio',
        healthcheck: { test: ['CMD-SHELL', 'true'], interval: '2s' },
      },
    },
    volumes: { data: null },
  };
}

type Compose = ReturnType<typeof base> & Record<string, any>;

function check(change: (compose: Compose) => void): string[] {
  const compose = base() as Compose;
  change(compose);
  return checkCompose(stringify(compose), { dir: root });
}

describe('checkCompose', () => {
  it('passes the repository docker-compose.yml and a valid compose text', () => {
    expect(checkComposeFile(resolve(root, 'docker-compose.yml'))).toEqual([]);
    expect(check(() => {})).toEqual([]);
  });

  it('reports a depends_on naming no service, in either syntax', () => {
    expect(check((c) => (c.services.api.depends_on = { cache: { condition: 'service_started' } } as any))).toEqual([
      'services.api.depends_on: no service named "cache"',
    ]);
    expect(check((c) => ((c.services.store as any).depends_on = ['api', 'queue']))).toEqual(['services.store.depends_on: no service named "queue"']);
  });

  it('reports a named volume not declared at the top level, short or long syntax; paths are bind mounts', () => {
    expect(check((c) => c.services.api.volumes.push('logs:/logs'))).toEqual(['services.api.volumes: volume "logs" is not declared under the top-level volumes']);
    expect(check((c) => c.services.api.volumes.push({ type: 'volume', source: 'cache', target: '/cache' }))).toEqual([
      'services.api.volumes: volume "cache" is not declared under the top-level volumes',
    ]);
    expect(check((c) => c.services.api.volumes.push('/var/log:/logs', '~/x:/x', 'rel/dir:/y', '/anonymous'))).toEqual([]);
  });

  it('reports a bad interpolation: a shell $(...) not escaped as $$, or a ${NAME...} form compose does not know', () => {
    expect(check((c) => (c.services.api.command[2] = 'echo "$(date)"'))).toEqual([
      'interpolation: /services/api/command/2: "$" at 6 is not followed by a name, "{" or "$" (a literal "$" is written "$$") in "echo \\"$(date)\\""',
    ]);
    const problems = check((c) => (c.services.api.environment.A = '${A:x}'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^interpolation: \/services\/api\/environment\/A: .*"\$\{A" is followed by ":"/);
  });

  it('reports what the Compose schema rejects', () => {
    const unknownKey = check((c) => ((c.services.api as any).restart_policy = 'always'));
    expect(unknownKey).toContain('schema: /services/api must NOT have additional properties: "restart_policy"');
    const badCondition = check((c) => (c.services.api.depends_on.store.condition = 'service_ready'));
    expect(badCondition.join('\n')).toMatch(/schema: \/services\/api\/depends_on\/store\/condition must be equal to one of the allowed values/);
    expect(check((c) => (c.services.api.ports = '3000' as any)).join('\n')).toMatch(/schema: \/services\/api\/ports must be array/);
    expect(check((c) => (c.volumez = {}))).toContain('schema: / must NOT have additional properties: "volumez"');
  });

  it('checks what compose would see: the values after interpolation with no variable set', () => {
    expect(check((c) => c.services.api.volumes.push('${VOLUME:-data}:/elsewhere'))).toEqual([]);
    expect(check((c) => c.services.api.volumes.push('${VOLUME:-logs}:/logs'))).toEqual(['services.api.volumes: volume "logs" is not declared under the top-level volumes']);
    expect(check((c) => c.services.api.ports.push('${HOST:-127.0.0.1}:9000:9000'))).toEqual([]);
    expect(check((c) => c.services.api.ports.push('${HOST:-0.0.0.0}:9000:9000'))).toEqual([
      'services.api.ports: "0.0.0.0:9000:9000" is published on 0.0.0.0, not only 127.0.0.1',
    ]);
  });

  it('reports a Dockerfile or a build context that is not on disk', () => {
    expect(check((c) => (c.services.api.build.dockerfile = 'deploy/nothing.Dockerfile'))).toEqual([
      'services.api.build.dockerfile: deploy/nothing.Dockerfile does not exist in .',
    ]);
    expect(check((c) => ((c.services.api as any).build = 'deploy'))).toEqual(['services.api.build.dockerfile: Dockerfile does not exist in deploy']);
    expect(check((c) => (c.services.api.build.context = 'no-such-dir'))).toEqual(['services.api.build.context: no-such-dir is not a directory']);
  });

  it('reports a port published beyond 127.0.0.1', () => {
    expect(check((c) => c.services.api.ports.push('9000:9000', '9001', '0.0.0.0:9002:9002/udp', { target: 9003, published: 9003 } as any))).toEqual([
      'services.api.ports: "9000:9000" is published on every interface, not only 127.0.0.1',
      'services.api.ports: "9001" is published on every interface, not only 127.0.0.1',
      'services.api.ports: "0.0.0.0:9002:9002/udp" is published on 0.0.0.0, not only 127.0.0.1',
      'services.api.ports: {"target":9003,"published":9003} is published on every interface, not only 127.0.0.1',
    ]);
  });

  it('reports text that is not YAML', () => {
    expect(checkCompose('services:\n  api:\n    image: a\n  api:\n    image: b\n', { dir: root })).toEqual([expect.stringMatching(/^YAML: Map keys must be unique/)]);
  });
});

describe('interpolate (compose-go template syntax, with no variable set)', () => {
  it.each([
    ['plain', 'plain'],
    ['$$HOME and $${HOME}', '$HOME and ${HOME}'],
    ['${A}|$A|${A:-d}|${A-d}|${A:+alt}|${A+alt}|${A:?needed}|${A?needed}', '||d|d||||'],
    ['${A:-${B:-nested}}-x', 'nested-x'],
    ['${A:-a b}c', 'a bc'],
  ])('%s → %s', (text, value) => {
    expect(interpolate(text)).toEqual({ value });
  });

  it.each(['$(cat x)', 'cost: 5$', '$ x', '${}', '${A', '${A:-x', '${A:x}', '${1A}', '${A.B}', '${A:-$(x)}'])('rejects %s', (text) => {
    expect(interpolate(text)).toHaveProperty('error');
  });
});
