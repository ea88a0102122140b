import { createHash, randomBytes } from 'node:crypto';

/**
 * Small recordings that look like what clients upload: the right magic bytes, then noise.
 * Their content is random so every test's bytes differ.
 */

export function wav(size: number): Buffer {
  if (size < 44) throw new Error('a WAV needs at least 44 bytes');
  const out = randomBytes(size);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(size - 8, 4);
  out.write('WAVEfmt ', 8, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(1, 22); // mono
  out.writeUInt32LE(16000, 24);
  out.writeUInt32LE(32000, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(size - 44, 40);
  return out;
}

export function mp3(size: number): Buffer {
  const out = randomBytes(size);
  out.write('ID3', 0, 'ascii');
  out[3] = 4;
  out[4] = 0;
  return out;
}

export function mp3FrameSync(size: number): Buffer {
  const out = randomBytes(size);
  // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
  out[0] = 0xff;
  out[1] = 0xfb;
  out[2] = 0x90;
  return out;
}

export function m4a(size: number): Buffer {
  const out = randomBytes(size);
  out.writeUInt32BE(24, 0);
  out.write('ftypM4A ', 4, 'ascii');
  return out;
}

export function notAudio(size: number): Buffer {
  const out = randomBytes(size);
  out.write('%PDF-1.7', 0, 'ascii');
  return out;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
