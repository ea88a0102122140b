#!/bin/sh
# Regenerates the real audio files in test/fixtures/audio/ with ffmpeg (libmp3lame and the
# native AAC encoder). For maintainers only: the files are committed, and neither the tests,
# CI nor users need ffmpeg. Run it from anywhere: `sh scripts/make-audio-fixtures.sh`.
#
# Each file is a few seconds of a two-tone signal (what matters is that a real encoder wrote
# the container and the frames), kept small: all of them together stay well under 1 MB.
# test/lib/processing/audio-fixtures.test.ts checks what each file is (format, codec,
# sample rate, channels, duration); change both together.
set -eu

command -v ffmpeg >/dev/null 2>&1 || { echo "make-audio-fixtures: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }

out="$(cd "$(dirname "$0")/.." && pwd)/test/fixtures/audio"
mkdir -p "$out"

# Two tones (220 Hz and 330 Hz) at a moderate level, for $1 seconds.
tones() { echo "aevalsrc=0.3*sin(2*PI*220*t)+0.2*sin(2*PI*330*t):s=48000:d=$1"; }
ff() { ffmpeg -hide_banner -loglevel error -y -fflags +bitexact "$@"; }

# WAV, PCM 16-bit: mono 16 kHz (what speech recorders write), stereo 44.1 kHz (CD-style).
ff -f lavfi -i "$(tones 2)" -ar 16000 -ac 1 -c:a pcm_s16le -flags:a +bitexact -map_metadata -1 "$out/mono-16k.wav"
ff -f lavfi -i "$(tones 1)" -ar 44100 -ac 2 -c:a pcm_s16le -flags:a +bitexact -map_metadata -1 "$out/stereo-44k.wav"

# MP3, CBR 128 kbit/s stereo 44.1 kHz: an ID3v2.4 tag, then a LAME "Info" frame, then the frames.
ff -f lavfi -i "$(tones 3)" -ar 44100 -ac 2 -c:a libmp3lame -b:a 128k \
  -metadata title="Transcribo fixture (CBR)" "$out/cbr-128k.mp3"

# MP3, VBR (LAME -V 5) mono 22.05 kHz: an ID3v2.4 tag, a "Xing" frame, the frames, and an ID3v1 tag at the end.
ff -f lavfi -i "$(tones 3)" -ar 22050 -ac 1 -c:a libmp3lame -q:a 5 -write_id3v1 1 \
  -metadata title="Transcribo fixture (VBR)" "$out/vbr-mono.mp3"

# M4A, AAC-LC mono 44.1 kHz 64 kbit/s, as ffmpeg lays it out by default: ftyp, free, mdat, then moov.
ff -f lavfi -i "$(tones 3)" -ar 44100 -ac 1 -c:a aac -b:a 64k -flags:a +bitexact -map_metadata -1 "$out/aac-mono.m4a"

ls -l "$out"
