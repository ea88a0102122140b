/**
 * The storage guide's minimal .env, as a user copies it: its seven STORAGE_* lines, a MinIO on
 * localhost:9000 with MinIO's default keys, no incoming bucket, no secrets, and extensions
 * written with dots. npm start, compose and the template must each work with it unchanged.
 */
export const GUIDE_ENV = {
  STORAGE_ENDPOINT: 'localhost:9000',
  STORAGE_ACCESS_KEY: 'minioadmin',
  STORAGE_SECRET_KEY: 'minioadmin',
  STORAGE_BUCKET: 'audio-files',
  STORAGE_ENCRYPTION_ENABLED: 'true',
  STORAGE_MAX_FILE_SIZE: '104857600',
  STORAGE_ALLOWED_EXTENSIONS: '.mp3,.wav,.m4a',
} as const;
