import { Readable } from 'node:stream';
import { parseStream, TrackType, type IAudioMetadata, type ITrackInfo } from 'music-metadata';
import type { AudioExtension } from '../audio-formats.ts';
import { InvalidAudio, type ContainerWalker } from '../audio/container-walker.ts';
import { MpegStructure, type MpegFacts } from '../audio/mpeg-structure.ts';
import { Mp4Structure, type Mp4Facts } from '../audio/mp4-structure.ts';
import { WavStructure, type WavFacts } from '../audio/wav-structure.ts';

/**
 * The audio check of the single streaming pass (the inspector calls it with every chunk, in
 * order, before passing the chunk on to the encryptor). Two readers see the same bytes:
 *
 * - a container walker (lib/audio/), synchronously, per chunk: the sizes, the frame chain, the
 *   boxes, with no buffering beyond a header;
 * - music-metadata's streaming parser, fed through a bounded queue: codec, sample rate,
 *   channels, duration, and its own errors and warnings.
 *
 * The queue holds at most FEED_HIGH_WATER bytes (or the one read the parser asked for, 256 kB
 * when it skips media data): when it is full, `write` returns a promise and the pass waits for
 * the parser, so memory stays bounded whatever the file's size. When the parser has what it
 * needs and stops reading (it does after four frames of a CBR MP3), the queue is dropped and the
 * rest flows to the encryptor unhindered. The verdict is given by `end()`, after the last byte and
 * before the inspector ends its stream, so a rejected file never becomes a stored object.
 */

/** What a transcription product needs to know of a recording before it schedules work. */
export interface AudioDescription {
  durationSeconds: number;
  /** As music-metadata names it: "PCM", "MPEG 1 Layer 3", "MPEG-4/AAC"... */
  codec: string;
  sampleRate: number;
  channels: number;
  /** Average bits per second of the audio, when known. */
  bitrate?: number;
}

const FEED_HIGH_WATER = 256 * 1024;
const MIME_TYPES: Record<AudioExtension, string> = { wav: 'audio/wav', mp3: 'audio/mpeg', m4a: 'audio/mp4' };
const FORMAT_NAMES: Record<AudioExtension, string> = { wav: 'WAV', mp3: 'MP3', m4a: 'M4A' };
/** Sample entries of audio codecs a transcription pipeline decodes from an MP4. */
const MP4_AUDIO_CODECS = new Set(['mp4a', 'alac', '.mp3', 'ac-3', 'ec-3', 'Opus', 'fLaC', 'ulaw', 'alaw', 'sowt', 'twos', 'lpcm', 'ima4']);
/**
 * music-metadata's warnings that mean the audio itself is damaged (its other warnings are about
 * tags: unknown ID3 frames, ID3 padding, unsupported iTunes items). Not among them: "Data chunk
 * size exceeds file size", which it raises for every WAV whose data chunk comes last (it
 * compares the size with what is left after subtracting it); the RIFF walker checks sizes.
 */
const FATAL_WARNINGS = [
  /^data chunk length exceeding file length/i, // WAV: data runs past the file
  /^Parse error/i, // MPEG: a header that does not parse where a frame should start
  /^Corrupt LAME header/i,
  /corrupt: negative frameDataLeft/i, // MPEG: a frame shorter than its own header fields
  /^Error at offset=/i, // MP4: an unreadable or zero box header
  /exceeding media data bounds/i, // MP4: chapter samples outside the media data
];
/** Below this an M4A track claims far more time than its samples can fill (AAC at its lowest is ~8 kbit/s). */
const MIN_MP4_BITRATE = 1000;

/** Feeds music-metadata from the pass; `offer` says when to wait for it. */
class ParserFeed extends Readable {
  #resume: (() => void) | undefined;

  constructor() {
    super({ highWaterMark: FEED_HIGH_WATER });
  }

  override _read(): void {
    this.release();
  }

  /** Lets a waiting pass go on: the parser wants more, or reads no more. */
  release(): void {
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  /** Queues a chunk; a promise when the queue is full, settled once the parser reads on (or stops). */
  offer(chunk: Buffer): Promise<void> | undefined {
    if (this.push(chunk)) return undefined;
    return new Promise((resolve) => {
      this.#resume = resolve;
    });
  }
}

export class AudioCheck {
  readonly #extension: AudioExtension;
  readonly #walker: ContainerWalker<WavFacts | MpegFacts | Mp4Facts>;
  readonly #feed = new ParserFeed();
  readonly #parsed: Promise<IAudioMetadata>;
  #settled = false;
  #parseError: unknown;

  constructor(extension: AudioExtension, options: { expectedSize?: number | undefined } = {}) {
    this.#extension = extension;
    const walkerOptions = { expectedSize: options.expectedSize };
    this.#walker =
      extension === 'wav' ? new WavStructure(walkerOptions) : extension === 'mp3' ? new MpegStructure(walkerOptions) : new Mp4Structure(walkerOptions);
    // The parser is chosen by the declared type (never guessed from the content), and told the size.
    this.#parsed = parseStream(
      this.#feed,
      { mimeType: MIME_TYPES[extension], ...(options.expectedSize !== undefined && { size: options.expectedSize }) },
      // skipPostHeaders: no reading to the end for an ID3v1 tag (the MPEG walker checks the tail itself),
      // so that the parser stops after the first frames of a CBR MP3 and the rest is not copied to it.
      { duration: true, skipCovers: true, skipPostHeaders: true },
    );
    this.#parsed.then(
      () => this.#settle(undefined),
      (error: unknown) => this.#settle(error ?? new Error('parse failed')),
    );
  }

  /**
   * The next chunk of the upload. Throws InvalidAudio as soon as the content is known to be
   * wrong; returns a promise when the pass must wait for the parser before the next chunk
   * (then `problem` says whether the parser failed meanwhile).
   */
  write(chunk: Buffer): Promise<void> | undefined {
    this.#walker.update(chunk);
    if (!this.#settled) return this.#feed.offer(chunk);
    this.#throwIfParseFailed();
    return undefined;
  }

  /** After a wait: the parser's failure, if it failed. */
  get problem(): InvalidAudio | undefined {
    return this.#parseError === undefined ? undefined : this.#parseProblem();
  }

  /** After the last chunk: the description of a consistent recording, or InvalidAudio. */
  async end(): Promise<AudioDescription> {
    const facts = this.#walker.finish();
    if (!this.#settled) this.#feed.push(null);
    let metadata: IAudioMetadata;
    try {
      metadata = await this.#parsed;
    } catch {
      throw this.#parseProblem();
    }
    return this.#describe(facts, metadata);
  }

  /** The pass failed elsewhere: stop the parser. */
  abort(): void {
    this.#feed.destroy();
  }

  #settle(error: unknown): void {
    this.#settled = true;
    this.#parseError = error;
    // Whatever it still holds, the parser will not read: free it, and let a waiting pass go on.
    this.#feed.release();
    this.#feed.destroy();
  }

  #throwIfParseFailed(): void {
    if (this.#parseError !== undefined) throw this.#parseProblem();
  }

  #parseProblem(): InvalidAudio {
    const error = this.#parseError;
    const message = error instanceof Error ? error.message : String(error);
    return new InvalidAudio(`not a readable ${FORMAT_NAMES[this.#extension]} file (${message.slice(0, 200)})`);
  }

  #describe(facts: WavFacts | MpegFacts | Mp4Facts, metadata: IAudioMetadata): AudioDescription {
    const fatal = metadata.quality.warnings.find((w) => FATAL_WARNINGS.some((pattern) => pattern.test(w.message)));
    if (fatal) throw new InvalidAudio(fatal.message.slice(0, 200));
    const format = metadata.format;
    let description: AudioDescription;
    switch (this.#extension) {
      case 'wav': {
        const wav = facts as WavFacts;
        description = {
          durationSeconds: format.duration ?? 0,
          // music-metadata names WAVE_FORMAT_EXTENSIBLE "non-PCM (65534)"; the walker read its sub-format.
          codec: format.codec === undefined || format.codec.startsWith('non-PCM') ? wav.codec : format.codec,
          sampleRate: format.sampleRate ?? 0,
          channels: format.numberOfChannels ?? 0,
          ...(format.bitrate !== undefined && { bitrate: format.bitrate }),
        };
        break;
      }
      case 'mp3': {
        const mpeg = facts as MpegFacts;
        // Both read the first frame's header; if they disagree, the parser found its stream elsewhere.
        if (format.codec !== mpeg.codec || format.sampleRate !== mpeg.sampleRate || format.numberOfChannels !== mpeg.channels) {
          throw new InvalidAudio(
            `the parser found ${format.codec ?? 'no codec'} ${format.sampleRate ?? '?'} Hz where the frames are ${mpeg.codec} ${mpeg.sampleRate} Hz`,
          );
        }
        // Duration and bitrate from the frames counted, not from a Xing header or the file size.
        description = { durationSeconds: mpeg.durationSeconds, codec: mpeg.codec, sampleRate: mpeg.sampleRate, channels: mpeg.channels, bitrate: mpeg.bitrate };
        break;
      }
      case 'm4a':
        description = describeMp4(facts as Mp4Facts, metadata);
        break;
    }
    if (!(description.durationSeconds > 0) || !Number.isFinite(description.durationSeconds)) throw new InvalidAudio('no duration (no audio samples)');
    if (!(description.sampleRate > 0)) throw new InvalidAudio('no sample rate');
    if (!(description.channels > 0)) throw new InvalidAudio('no audio channels');
    return {
      durationSeconds: Math.round(description.durationSeconds * 1000) / 1000,
      codec: description.codec,
      sampleRate: Math.round(description.sampleRate),
      channels: description.channels,
      ...(description.bitrate !== undefined && Number.isFinite(description.bitrate) && { bitrate: Math.round(description.bitrate) }),
    };
  }
}

function describeMp4(facts: Mp4Facts, metadata: IAudioMetadata): AudioDescription {
  const format = metadata.format;
  if (format.hasVideo) throw new InvalidAudio('the file has a video track (an M4A holds audio only)');
  const audio = format.trackInfo.find((t) => t.type === TrackType.audio);
  if (audio === undefined) throw new InvalidAudio('no audio track');
  if (!MP4_AUDIO_CODECS.has(audio.codecId ?? '')) throw new InvalidAudio(`audio codec "${audio.codecId ?? 'none'}" is not supported`);
  // The samples the tracks index must be in the media data: a moov describing more than the
  // mdat holds belongs to another file, or to this one before it was cut.
  const indexed = format.trackInfo.reduce((sum, t) => sum + trackBytes(t), 0);
  if (indexed > facts.mediaBytes + 64) {
    throw new InvalidAudio(`the tracks index ${Math.round(indexed)} bytes of samples, but the media data holds ${facts.mediaBytes}`);
  }
  if (audio.bitrate !== undefined && audio.bitrate < MIN_MP4_BITRATE) {
    throw new InvalidAudio(`the audio track claims ${Math.round(audio.duration ?? 0)} s for ${Math.round(trackBytes(audio))} bytes of samples`);
  }
  const walked = facts.tracks.find((t) => t.handler === 'soun' || t.handler === 'audi');
  return {
    durationSeconds: audio.duration ?? format.duration ?? 0,
    codec: audio.codecName ?? format.codec ?? audio.codecId!,
    sampleRate: audio.audio?.samplingFrequency ?? format.sampleRate ?? 0,
    // The sample entry's channel count is a template value for AAC; the decoder configuration has the real one.
    channels: walked?.channels ?? audio.audio?.channels ?? format.numberOfChannels ?? 0,
    ...(audio.bitrate !== undefined && { bitrate: audio.bitrate }),
  };
}

/** Bytes of samples a track indexes, from its duration and bitrate (music-metadata derives the bitrate from the sample sizes). */
function trackBytes(track: ITrackInfo): number {
  return track.bitrate !== undefined && track.duration !== undefined ? (track.bitrate * track.duration) / 8 : 0;
}
