/**
 * The MinIO webhook notification target the product's local runs deliver events through:
 * MinIO is started with MINIO_NOTIFY_WEBHOOK_*_TRANSCRIBO pointing at the start script's relay.
 * Kept apart from storage-setup.ts so the MinIO harness can name it without loading the AWS SDK.
 */
export const WEBHOOK_TARGET_ID = 'TRANSCRIBO';
export const WEBHOOK_ARN = `arn:minio:sqs::${WEBHOOK_TARGET_ID}:webhook`;
