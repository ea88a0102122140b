import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import { redactingReplacer } from './redaction.ts';

const base = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'transcribo-storage',
  jsonReplacerFn: redactingReplacer,
});

/**
 * Locally (serverless-offline) every function runs in one process with this one module, so
 * concurrent invocations would share one Logger's Lambda context and keys: a process-upload
 * line came out with a GET's request id. Each invocation (and each file a sweep works on at
 * the same time as others) gets a child logger of its own, held in AsyncLocalStorage; deployed,
 * with one invocation per process, this costs one child per invocation and changes nothing.
 */
const scope = new AsyncLocalStorage<Logger>();
const current = (): Logger => scope.getStore() ?? base;

/** The project's one logger: structured JSON through Powertools, scrubbed by `redactingReplacer`, in the current invocation's context. */
export const logger: Logger = new Proxy(base, {
  get(_target, property) {
    const target = current();
    const value = Reflect.get(target, property, target);
    // Bound to the real Logger: its methods use private fields, which a Proxy receiver lacks.
    return typeof value === 'function' ? value.bind(target) : value;
  },
  set(_target, property, value) {
    return Reflect.set(current(), property, value);
  },
});

/**
 * Wraps a Lambda handler so each invocation logs through a logger of its own. Wrap the finished
 * middy chain: `injectLambdaContext` must run inside the scope to put its context on that logger.
 */
export function perInvocationLogger<H extends (...args: never[]) => unknown>(handler: H): H {
  return new Proxy(handler, {
    apply: (target, thisArg, args) => scope.run(base.createChild(), () => Reflect.apply(target, thisArg, args)),
  });
}

/** Runs `fn` with `keys` on every line it logs, without touching lines logged meanwhile by other work of the same invocation. */
export function withLogKeys<T>(keys: Record<string, unknown>, fn: () => T): T {
  const parent = current();
  const child = parent.createChild();
  child.appendKeys(keys);
  return scope.run(child, fn);
}

/**
 * Puts `operation` (the function's name, as in serverless.yml and the metrics' `operation`
 * dimension) and the event's file id, when it has one, on every line of the invocation; removed
 * when it ends, so a warm instance never carries them into the next one.
 */
export function operationLogKeys<E>(operation: string, fileIdOf?: (event: E) => string | undefined): MiddlewareObj<E> {
  const keys = ['operation', 'fileId'];
  return {
    before: (request) => {
      const fileId = fileIdOf?.(request.event);
      logger.appendKeys({ operation, ...(fileId ? { fileId } : {}) });
    },
    after: () => logger.removeKeys(keys),
    onError: () => logger.removeKeys(keys),
  };
}
