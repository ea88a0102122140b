/**
 * `npm run purge -- <fileId> [<fileId>…]`: an erasure request, run by an operator. Each file goes
 * at once with every version of it, whoever its owner and whether it is live or deleted and still
 * restorable (lib/storage/recovery.ts); a file already gone is reported so, and checked for any
 * version left. Runs with the configuration of the shell, `.env` and `.local/minio.env`, as
 * `npm start` and `npm run rotate-keys` do. Exits 1 if an id is not a UUID.
 */
import { ConfigError } from '../lib/config.ts';
import { operatorContext } from './local/operator-context.ts';
import { StorageError } from '../lib/errors/catalogue.ts';
import { isFileId } from '../lib/storage/object-layout.ts';
import { findDeletedEntryKey, purgeVersions } from '../lib/storage/recovery.ts';
import { StorageService } from '../lib/service/storage-service.ts';

const fileIds = process.argv.slice(2);
if (fileIds.length === 0 || !fileIds.every(isFileId)) {
  process.stderr.write('usage: npm run purge -- <fileId> [<fileId>…]  (file ids are UUIDs)\n');
  process.exit(1);
}

try {
  const ctx = await operatorContext();
  const service = new StorageService(ctx);
  for (const fileId of fileIds) {
    const live = await ctx.manifests.read(fileId);
    if (live !== undefined) {
      // Through the owner's own delete, so that its uploads, quota and totals are settled too.
      await service.deleteFile(live.manifest.owner, fileId, { purge: true });
      console.log(`${fileId}: purged (it was ${live.manifest.status})`);
      continue;
    }
    const entry = await findDeletedEntryKey(ctx, fileId);
    await purgeVersions(ctx, fileId, entry, 'purge');
    console.log(`${fileId}: ${entry === undefined ? 'no such file; no version of it is left' : 'purged (it was deleted)'}`);
  }
} catch (error) {
  const known = error instanceof ConfigError || error instanceof StorageError;
  process.stderr.write(`purge: ${known ? (error as Error).message : String(error)}\n`);
  process.exit(2);
}
