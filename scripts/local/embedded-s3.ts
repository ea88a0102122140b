/**
 * The embedded default: an in-process S3 emulator (s3rver) for trying the API with nothing
 * installed. It stores bytes faithfully but enforces no signature, no POST policy and no
 * size limit, and has no conditional writes: fine for a demo, never evidence of security.
 * Its object-created events are in-process only, so they are handed to `onObjectCreated`.
 */
import S3rver from 's3rver';

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}

const CORS = `<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>*</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>PUT</AllowedMethod>
    <AllowedMethod>POST</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>`;

export async function startEmbeddedS3(options: {
  port: number;
  directory: string;
  buckets: string[];
  onObjectCreated: (event: unknown) => void;
}): Promise<EmbeddedS3> {
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port,
    directory: options.directory,
    silent: true,
    configureBuckets: options.buckets.map((name) => ({ name, configs: [CORS] })),
  });
  server.on('event', (event: { Records?: Array<{ eventName?: string }> }) => {
    if (event.Records?.some((r) => r.eventName?.startsWith('ObjectCreated'))) options.onObjectCreated(event);
  });
  const address = (await server.run()) as { port: number };
  return {
    endpoint: '127.0.0.1',
    port: address.port,
    // s3rver accepts these fixed credentials (it checks no signature anyway).
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    stop: () => server.close(),
  };
}
