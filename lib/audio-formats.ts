/**
 * The audio formats the product accepts: extension, the content types that fit it, and how
 * its first bytes look. One table so the upload check and the processing check agree.
 */

export type AudioExtension = 'mp3' | 'wav' | 'm4a';

export const CONTENT_TYPES: Record<AudioExtension, readonly string[]> = {
  mp3: ['audio/mpeg', 'audio/mp3', 'audio/mpeg3', 'audio/x-mpeg-3'],
  wav: ['audio/wav', 'audio/wave', 'audio/x-wav', 'audio/vnd.wave'],
  m4a: ['audio/mp4', 'audio/x-m4a', 'audio/m4a', 'audio/aac'],
};

/** Bytes the sniffer needs to decide. */
export const SNIFF_BYTES = 12;

function ascii(bytes: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** MPEG audio frame header: 11 sync bits, a defined version, a defined layer, a usable bitrate and sample rate. */
function isMpegFrameSync(b: Uint8Array): boolean {
  const [b0, b1, b2] = [b[0] ?? 0, b[1] ?? 0, b[2] ?? 0];
  if (b0 !== 0xff || (b1 & 0xe0) !== 0xe0) return false;
  const version = (b1 >> 3) & 0x03;
  const layer = (b1 >> 1) & 0x03;
  const bitrate = (b2 >> 4) & 0x0f;
  const sampleRate = (b2 >> 2) & 0x03;
  return version !== 0x01 && layer !== 0x00 && bitrate !== 0x0f && sampleRate !== 0x03;
}

/** The format the first bytes announce, or undefined when they match none. */
export function sniffAudio(head: Uint8Array): AudioExtension | undefined {
  if (head.length >= 12 && ascii(head, 0, 'RIFF') && ascii(head, 8, 'WAVE')) return 'wav';
  if (head.length >= 8 && ascii(head, 4, 'ftyp')) return 'm4a';
  if (head.length >= 3 && ascii(head, 0, 'ID3')) return 'mp3';
  if (head.length >= 3 && isMpegFrameSync(head)) return 'mp3';
  return undefined;
}

export function extensionOf(filename: string): string {
  const dot = filename.lastIndexOf('.');
  return dot < 0 ? '' : filename.slice(dot + 1).toLowerCase();
}
