import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

/**
 * Real payload shapes: API Gateway HTTP API (v2) requests, and object-created notifications
 * as AWS S3 and MinIO send them (MinIO prefixes event names with `s3:`; both URL-encode keys
 * with `+` for spaces).
 */

export function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'test',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test',
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/test',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  token?: string | undefined;
  fileId?: string;
  body?: string;
  headers?: Record<string, string>;
}

/** A path may carry a query (`/files/x/content?token=…`): API Gateway splits it off as v2 does. */
export function apiEvent(request: ApiRequest): APIGatewayProxyEventV2 {
  const [path, query = ''] = request.path.split('?') as [string, string?];
  request = { ...request, path };
  const queryStringParameters = Object.fromEntries(new URLSearchParams(query));
  const headers: Record<string, string> = { host: 'localhost:3000', ...request.headers };
  if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  const routeKey = `${request.method} ${request.path.replace(/[0-9a-f-]{36}|\{fileId\}/, '{fileId}')}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: request.path,
    rawQueryString: query,
    headers,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method: request.method, path: request.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    ...(request.fileId !== undefined && { pathParameters: { fileId: request.fileId } }),
    ...(query !== '' && { queryStringParameters }),
    ...(request.body !== undefined && { body: request.body }),
    isBase64Encoded: false,
  };
}

/**
 * Keys as notifications carry them: form-encoded (space as `+`, `+` as `%2B`). AWS keeps
 * `/`; MinIO (Go's url.QueryEscape) encodes it as `%2F` too.
 */
export function encodeNotificationKey(key: string, flavour: 'aws' | 'minio' = 'aws'): string {
  const encoded = encodeURIComponent(key).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return flavour === 'minio' ? encoded : encoded.replace(/%2F/g, '/');
}

export function s3Event(bucket: string, key: string, options: { flavour?: 'aws' | 'minio'; size?: number } = {}) {
  const minio = options.flavour === 'minio';
  return {
    ...(minio && { EventName: 's3:ObjectCreated:Post', Key: `${bucket}/${key}` }),
    Records: [
      {
        eventVersion: '2.0',
        eventSource: minio ? 'minio:s3' : 'aws:s3',
        awsRegion: 'us-east-1',
        eventTime: new Date().toISOString(),
        eventName: minio ? 's3:ObjectCreated:Post' : 'ObjectCreated:Post',
        userIdentity: { principalId: 'client' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': randomUUID() },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'uploads',
          bucket: { name: bucket, ownerIdentity: { principalId: 'minio' }, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodeNotificationKey(key, options.flavour), size: options.size ?? 0, eTag: 'etag', sequencer: '0' },
        },
      },
    ],
  };
}
