#!/usr/bin/env bash
# Regenerates the audio prompts in agent/assets/ (embedded into the agent with include_bytes!).
#
# Needs espeak-ng (German voice "de") and sox: `apt-get install espeak-ng sox`.
# Every prompt is 24 kHz mono signed 16-bit WAV, the OpenAI Realtime PCM rate, so the local
# server and the bridge can play it without resampling. The files are committed; run this only
# when a text changes. Output is deterministic for a given espeak-ng/sox version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../agent/assets}"
mkdir -p "$out"

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found; apt-get install espeak-ng sox" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# speak NAME TEXT: German TTS, resampled to 24 kHz, normalised to -3 dBFS, 100 ms lead-in/out.
speak() {
    local name="$1" text="$2"
    espeak-ng -v de -s 200 -w "$tmp/$name.raw.wav" "$text"
    sox "$tmp/$name.raw.wav" -r 24000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
        norm -3 pad 0.1 0.1
}

speak greeting "Hallo, hier ist der Echo-Test von voiceagent. Sprechen Sie, ich wiederhole Ihre Worte."
speak apology "Entschuldigung, es gibt gerade eine technische Störung. Bitte rufen Sie später noch einmal an."
speak recording-notice "Dieses Gespräch wird aufgezeichnet."
speak goodbye "Die maximale Gesprächsdauer ist erreicht. Vielen Dank für Ihren Anruf. Auf Wiederhören."

# hold: two soft sine tones (440 Hz then 554 Hz), faded, 1.5 s in total, at about -18 dBFS.
sox -n -r 24000 -c 1 -b 16 -e signed-integer "$tmp/tone1.wav" synth 0.6 sine 440 fade q 0.05 0.6 0.15 vol 0.12
sox -n -r 24000 -c 1 -b 16 -e signed-integer "$tmp/tone2.wav" synth 0.6 sine 554 fade q 0.05 0.6 0.15 vol 0.12
sox -n -r 24000 -c 1 -b 16 -e signed-integer "$tmp/gap.wav" trim 0 0.3
sox "$tmp/tone1.wav" "$tmp/tone2.wav" "$tmp/gap.wav" "$out/hold.wav"

for f in greeting apology recording-notice goodbye hold; do
    size=$(stat -c %s "$out/$f.wav")
    if [ "$size" -ge 250000 ]; then
        echo "error: $out/$f.wav is $size bytes; prompts must stay below 250 kB" >&2
        exit 1
    fi
    echo "$f.wav: $(soxi -D "$out/$f.wav") s, $size bytes"
done
