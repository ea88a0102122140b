import { describe, expect, it } from 'vitest';
import { extensionOf, sniffAudio } from '../../lib/audio-formats.ts';
import { m4a, mp3, mp3FrameSync, notAudio, wav } from '../support/audio-fixtures.ts';

describe('sniffAudio', () => {
  it('recognises WAV, MP3 (ID3 and frame sync) and M4A', () => {
    expect(sniffAudio(wav(100))).toBe('wav');
    expect(sniffAudio(mp3(1000))).toBe('mp3');
    expect(sniffAudio(mp3FrameSync(1000))).toBe('mp3');
    expect(sniffAudio(m4a(1000))).toBe('m4a');
  });

  it('refuses other content, RIFF that is not WAVE, and impossible MPEG headers', () => {
    expect(sniffAudio(notAudio(100))).toBeUndefined();
    const avi = wav(100);
    avi.write('AVI ', 8, 'ascii');
    expect(sniffAudio(avi)).toBeUndefined();
    expect(sniffAudio(Buffer.from([0xff, 0xe8, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // reserved version
    expect(sniffAudio(Buffer.from([0xff, 0xfb, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // bad bitrate
    expect(sniffAudio(Buffer.alloc(0))).toBeUndefined();
  });

  it('takes the extension after the last dot, case-insensitively', () => {
    expect(extensionOf('a.b.WAV')).toBe('wav');
    expect(extensionOf('noext')).toBe('');
  });
});
