import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { lambdaContext } from './lambda-events.ts';

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

export interface Reply {
  status: number;
  headers: Record<string, string>;
  json: any;
  bytes: Buffer;
}

/** Invokes a function's handler as Lambda would and decodes its response. */
export async function invoke(handler: unknown, event: APIGatewayProxyEventV2): Promise<Reply> {
  const result = await (handler as Handler)(event, lambdaContext());
  const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const bytes = result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  let json: unknown;
  if ((headers['content-type'] ?? '').startsWith('application/json')) json = JSON.parse(bytes.toString('utf8'));
  return { status: result.statusCode ?? 200, headers, json, bytes };
}
