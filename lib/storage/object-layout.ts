/**
 * Where things live. Keys are built from the server-generated fileId only: a client's
 * filename never becomes part of a key.
 *
 *   incoming bucket  uploads/<fileId>          the client's raw upload, until processed
 *   final bucket     files/<fileId>            the checked, encrypted recording
 *   final bucket     manifests/<fileId>.json   owner, declared attributes, status
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isFileId(value: string): boolean {
  return UUID.test(value);
}

export const incomingKey = (fileId: string) => `uploads/${fileId}`;
export const finalKey = (fileId: string) => `files/${fileId}`;
export const manifestKey = (fileId: string) => `manifests/${fileId}.json`;

/** The fileId an incoming key belongs to, or undefined for keys that are not uploads. */
export function fileIdFromIncomingKey(key: string): string | undefined {
  const match = /^uploads\/([^/]+)$/.exec(key);
  return match?.[1] !== undefined && isFileId(match[1]) ? match[1] : undefined;
}
