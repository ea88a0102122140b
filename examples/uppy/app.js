// The example page's script: an app using the adapter. Bundled with esbuild (see README.md).
import Uppy from '@uppy/core';
import { useTranscribo } from './transcribo-uppy.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const log = (line) => { $('log').textContent += `${line}\n`; };
const status = (text) => { $('status').textContent = text; };

const uppy = new Uppy({ restrictions: { allowedFileTypes: ['.wav', '.mp3', '.m4a'] } });
useTranscribo(uppy, {
  api: params.get('api') ?? 'http://127.0.0.1:3000',
  token: params.get('token') ?? '',
  ...(params.has('multipartThreshold') && { multipartThreshold: Number(params.get('multipartThreshold')) }),
});

uppy.on('upload-progress', (file, p) => { $('progress').value = p.bytesTotal ? p.bytesUploaded / p.bytesTotal : 0; });
uppy.on('s3-multipart:part-uploaded', (file, part) => log(`part ${part.PartNumber} stored`));
uppy.on('upload-error', (file, error) => { log(`${file?.name}: ${error.message}`); status('error'); });
uppy.on('upload-success', (file, response) => log(`${file.name}: stored as ${response.body.key} (fileId ${file.meta.fileId})`));
uppy.on('complete', (result) => status(result.failed.length === 0 && result.successful.length > 0 ? 'uploaded' : 'error'));

$('file').addEventListener('change', () => {
  for (const file of $('file').files) uppy.addFile({ name: file.name, type: file.type, data: file, source: 'input' });
});
$('upload').addEventListener('click', () => { status('uploading'); uppy.upload().catch((error) => log(error.message)); });
$('retry').addEventListener('click', () => { status('uploading'); uppy.retryAll(); });

// For the curious (and the browser test): the Uppy instance.
window.uppy = uppy;
