import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { StorageFileCorruptedError, StorageOperationError } from '../errors/catalogue.ts';
import { KEY_LENGTH, KMS_KEK_ID, type RemoteKeyProvider } from './keyring.ts';

/**
 * AWS KMS as the key-encryption key: the key never leaves KMS; a data key comes from
 * `GenerateDataKey` (its plaintext for this use only, its ciphertext blob stored as the wrapped
 * key) and is opened again with `Decrypt`. The encryption context names the product, so a blob
 * made for anything else does not open here. KMS rotates its own key material and keeps the old
 * for decrypting, so rotating within KMS needs no re-wrap; `npm run rotate-keys` re-wraps keys of
 * the static keys under KMS (`Encrypt`) when a deployment moves to it.
 *
 * Opened keys are kept in memory (at most MAX_CACHED, by their blob; an evicted one is wiped): a
 * manifest is opened on every request, and one `Decrypt` per read would be slower and dearer
 * than the read itself. The recording's data key is cached the same way, by its blob as read from
 * the object's metadata with the frames: a re-wrapped key (rotation) is a new blob, opened anew,
 * and a read served from a cached manifest (lib/service/ready-manifests.ts) makes no KMS call.
 */

const ENCRYPTION_CONTEXT = { service: 'transcribo-storage' };
const MAX_CACHED = 2000;

export function kmsKeyProvider(keyId: string, client: KMSClient = new KMSClient({})): RemoteKeyProvider {
  const opened = new Map<string, Buffer>();
  const remember = (blob: Buffer, dataKey: Buffer) => {
    if (opened.size >= MAX_CACHED) {
      // The oldest goes, its bytes wiped: a copy is what every caller got, so none is in use.
      const [oldest, key] = opened.entries().next().value!;
      key.fill(0);
      opened.delete(oldest);
    }
    opened.set(blob.toString('base64'), Buffer.from(dataKey));
  };
  const failed = (operation: string, cause: unknown) =>
    new StorageOperationError('The key service could not be reached or refused the request.', { operation, cause });

  return {
    id: KMS_KEK_ID,
    async generateDataKey() {
      const out = await client
        .send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ENCRYPTION_CONTEXT }))
        .catch((error: unknown) => Promise.reject(failed('generateDataKey', error)));
      const dataKey = Buffer.from(out.Plaintext!);
      const wrappedKey = Buffer.from(out.CiphertextBlob!);
      if (dataKey.length !== KEY_LENGTH) throw failed('generateDataKey', new Error('unexpected key length'));
      remember(wrappedKey, dataKey);
      return { dataKey, wrappedKey };
    },
    async wrap(dataKey) {
      const out = await client
        .send(new EncryptCommand({ KeyId: keyId, Plaintext: dataKey, EncryptionContext: ENCRYPTION_CONTEXT }))
        .catch((error: unknown) => Promise.reject(failed('wrapKey', error)));
      return Buffer.from(out.CiphertextBlob!);
    },
    async unwrap(wrappedKey, fileId) {
      const known = opened.get(wrappedKey.toString('base64'));
      if (known !== undefined) return Buffer.from(known);
      let plaintext: Uint8Array | undefined;
      try {
        ({ Plaintext: plaintext } = await client.send(
          new DecryptCommand({ KeyId: keyId, CiphertextBlob: wrappedKey, EncryptionContext: ENCRYPTION_CONTEXT }),
        ));
      } catch (error) {
        // KMS says a blob that is not its own, or was altered, is an InvalidCiphertextException.
        if ((error as { name?: string }).name === 'InvalidCiphertextException') {
          throw new StorageFileCorruptedError('The wrapped data key fails its integrity check', { operation: 'unwrapKey', fileId, details: { kekId: KMS_KEK_ID }, cause: error });
        }
        throw failed('unwrapKey', error);
      }
      const dataKey = Buffer.from(plaintext!);
      if (dataKey.length !== KEY_LENGTH) {
        throw new StorageFileCorruptedError('The wrapped data key fails its integrity check', { operation: 'unwrapKey', fileId, details: { kekId: KMS_KEK_ID } });
      }
      remember(wrappedKey, dataKey);
      return dataKey;
    },
  };
}
