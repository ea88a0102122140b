import middy, { type MiddlewareObj } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { ownerFromAuthorization } from '../auth/caller-token.ts';
import { ownerFromPlaybackLink } from '../auth/playback-link.ts';
import { loadConfig, type SecretNeed } from '../config.ts';
import { withSecrets } from '../secret-parameters.ts';
import { logger, operationLogKeys, perInvocationLogger } from '../observability/logger.ts';
import { metrics, recordRefusal } from '../observability/metrics.ts';
import type { z } from 'zod';
import { ValidationError } from '../errors/catalogue.ts';
import { parseBody } from '../upload/upload-request.ts';
import { asCatalogueError, renderError } from './error-response.ts';

/**
 * The plumbing every HTTP function shares, as middy middlewares, so a handler is only
 * "parse, call lib/, shape the response": Lambda context in the logs, metrics flushed,
 * the caller authenticated (`context.owner`), and any failure rendered by the catalogue.
 */

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;
export interface OwnerContext extends Context {
  /** The authenticated caller: the bearer token's `sub`. */
  owner: string;
}
export type HttpHandler = (event: HttpEvent, context: OwnerContext) => Promise<HttpResult>;

function requestIdOf(event: HttpEvent, context: Context): string {
  return event.requestContext?.requestId ?? context.awsRequestId;
}

/** Turns any error into the catalogue's response; logs the caller's mistakes quietly and ours loudly. */
export function catalogueErrors(operation: string): MiddlewareObj<HttpEvent, HttpResult> {
  return {
    onError: (request) => {
      // Counted once per request: a refusal before the service call (auth, body, secrets) here,
      // anything the service call already counted is skipped (lib/observability/metrics.ts).
      recordRefusal(operation, request.error);
      const error = asCatalogueError(request.error, operation);
      // The request's operation and fileId are on every line already (operationLogKeys): an undefined fileId or the
      // failing step's name here would overwrite them, so the step goes under a key of its own.
      const log = {
        type: error.name,
        ...(error.operation !== operation ? { step: error.operation } : {}),
        ...(error.fileId ? { fileId: error.fileId } : {}),
        details: error.details,
      };
      if (error.status >= 500) logger.error(error.message, { ...log, error: request.error as Error });
      else logger.info('request refused', { ...log, status: error.status, reason: error.message });
      request.response = renderError(error, requestIdOf(request.event, request.context));
    },
  };
}

/**
 * Names the owner in the context from `Authorization: Bearer <JWT>`, or, where the route serves
 * header-less clients, from a playback link's `?token=` bound to the file in the path.
 */
export function callerAuth(options: { playbackLinks: boolean }): MiddlewareObj<HttpEvent, HttpResult, Error, OwnerContext> {
  return {
    before: async (request) => {
      const { headers = {}, queryStringParameters } = request.event;
      const authorization = headers.authorization ?? headers.Authorization;
      const link = queryStringParameters?.token;
      const config = loadConfig();
      request.context.owner =
        options.playbackLinks && authorization === undefined && link !== undefined
          ? await ownerFromPlaybackLink(config.playbackLinks.key!, link, pathFileId(request.event))
          : await ownerFromAuthorization(authorization, config);
    },
  };
}

/**
 * How long before the function's timeout middy gives up on the handler and answers 504 itself,
 * so the caller gets the catalogue's error rather than the platform's (API Gateway's bare 503,
 * or serverless-offline's 200 with a stack). Covers a cold start, which the remaining-time
 * clock does not count locally.
 */
export const TIMEOUT_MARGIN_MS = 3_000;

export interface HttpFunctionOptions {
  /** The route also serves playback links (`?token=`), for clients that send no header. */
  playbackLinks?: boolean;
  /** Secrets the handler needs besides those every route has (read from Parameter Store when deployed). */
  secrets?: SecretNeed[];
}

/**
 * What a route must have before it can work: the HS256 secret, unless callers come with an
 * identity provider's tokens and no link is involved; and the encryption keys, since every route
 * reads or writes sealed manifests (lib/crypto/manifest-seal.ts).
 */
function secretsOf(options: HttpFunctionOptions): SecretNeed[] {
  const hs256 = loadConfig().auth.jwksUrl === undefined || options.playbackLinks === true;
  return [...new Set<SecretNeed>([...(hs256 ? (['jwtSecret'] as const) : []), 'encryptionKeys', ...(options.secrets ?? [])])];
}

export function httpFunction(operation: string, handler: HttpHandler, options: HttpFunctionOptions = {}) {
  const chain = middy<HttpEvent, HttpResult, Error, OwnerContext>({ timeoutEarlyInMillis: TIMEOUT_MARGIN_MS })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(operationLogKeys<HttpEvent>(operation, (event) => event.pathParameters?.fileId) as MiddlewareObj<HttpEvent, HttpResult, Error, OwnerContext>)
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .use(catalogueErrors(operation) as MiddlewareObj<HttpEvent, HttpResult, Error, OwnerContext>)
    .use(withSecrets(() => secretsOf(options)))
    .use(callerAuth({ playbackLinks: options.playbackLinks ?? false }))
    .handler(handler);
  return perInvocationLogger(chain);
}

export function json(statusCode: number, body: unknown): HttpResult {
  return {
    statusCode,
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' },
    body: JSON.stringify(body),
  };
}

/** Parses a JSON request body (API Gateway may hand it base64-encoded). */
export function jsonBody(event: HttpEvent, operation: string): unknown {
  const raw = event.body === undefined ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(raw);
  } catch {
    throw new ValidationError('The request body must be valid JSON.', { operation });
  }
}

/** A JSON body checked against its schema; no body at all reads as `{}`, so the schema names what is missing. */
export function requestBody<T>(event: HttpEvent, schema: z.ZodType<T>, operation: string): T {
  return parseBody(schema, event.body ? jsonBody(event, operation) : {}, operation);
}

export function pathFileId(event: HttpEvent): string {
  return event.pathParameters?.fileId ?? '';
}

/** The origin the caller reached the API at, for links it will follow back (API Gateway always says the scheme; a local run is http). */
export function requestOrigin(event: HttpEvent): string {
  const headers = event.headers ?? {};
  const host = headers.host ?? headers.Host ?? event.requestContext.domainName;
  // Only ever http or https, whatever a client writes in the header.
  const proto = (headers['x-forwarded-proto'] ?? 'http').split(',')[0]!.trim() === 'http' ? 'http' : 'https';
  return `${proto}://${host}`;
}
