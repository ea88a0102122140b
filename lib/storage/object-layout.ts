/**
 * Where things live. Keys are built from the server-generated fileId only: a client's
 * filename never becomes part of a key.
 *
 *   incoming bucket  uploads/<fileId>          the client's raw upload, until processed
 *   final bucket     files/<fileId>            the checked, encrypted recording
 *   final bucket     manifests/<fileId>.json   status and sizes; owner and declared attributes sealed (manifest-seal.ts)
 *   final bucket     keys/owner-tags.json      the wrapped key of owner tags (owner-tags.ts)
 *   final bucket     pending/<fileId>          empty marker: this file is not settled yet (the sweep's index)
 *   final bucket     dead-letters/<time>-<id>.json   processing given up on (when no SQS queue is configured)
 *   final bucket     deleted/<owner tag>/<fileId>    a deleted file still restorable (recovery.ts)
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isFileId(value: string): boolean {
  return UUID.test(value);
}

export const INCOMING_PREFIX = 'uploads/';
export const FINAL_PREFIX = 'files/';
export const PENDING_PREFIX = 'pending/';
export const DEAD_LETTER_PREFIX = 'dead-letters/';
export const DELETED_PREFIX = 'deleted/';

/** User metadata of a stored object naming its seal, which its manifest records too. */
export const SEAL_ID_METADATA = 'seal-id';

export const incomingKey = (fileId: string) => `${INCOMING_PREFIX}${fileId}`;
export const finalKey = (fileId: string) => `${FINAL_PREFIX}${fileId}`;
export const manifestKey = (fileId: string) => `manifests/${fileId}.json`;
export const pendingKey = (fileId: string) => `${PENDING_PREFIX}${fileId}`;
export const deletedKey = (ownerTag: string, fileId: string) => `${DELETED_PREFIX}${ownerTag}/${fileId}`;

function fileIdAfter(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  return isFileId(rest) ? rest : undefined;
}

/** The fileId an incoming key belongs to, or undefined for keys that are not uploads. */
export const fileIdFromIncomingKey = (key: string) => fileIdAfter(INCOMING_PREFIX, key);
export const fileIdFromFinalKey = (key: string) => fileIdAfter(FINAL_PREFIX, key);
export const fileIdFromPendingKey = (key: string) => fileIdAfter(PENDING_PREFIX, key);
