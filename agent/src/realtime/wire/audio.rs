//! Audio payloads: base64 of raw little-endian PCM16 at 24 kHz, mono, no header (reference §4).
//!
//! Durations are kept in samples and converted to milliseconds only at the edge, because the
//! truncate offset must never exceed the audio the server has for an item (§10.2): integer
//! sample counts make the clamp exact.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::session::PCM_RATE_HZ;

/// Samples per millisecond at 24 kHz.
pub const SAMPLES_PER_MS: u64 = PCM_RATE_HZ as u64 / 1000;

/// Why an audio payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioDecodeError {
    #[error("audio payload is not valid base64: {0}")]
    Base64(String),
    #[error("audio payload has an odd number of bytes ({0}); PCM16 needs 2 bytes per sample")]
    OddLength(usize),
}

/// Encodes PCM16 samples as base64 of their little-endian bytes.
pub fn encode_pcm16(samples: &[i16]) -> String {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    for sample in samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// Decodes base64 of little-endian PCM16 bytes into samples.
pub fn decode_pcm16(payload: &str) -> Result<Vec<i16>, AudioDecodeError> {
    let bytes = STANDARD
        .decode(payload)
        .map_err(|e| AudioDecodeError::Base64(e.to_string()))?;
    if bytes.len() % 2 != 0 {
        return Err(AudioDecodeError::OddLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect())
}

/// Whole milliseconds covered by `samples` at 24 kHz (rounded down).
pub fn samples_to_ms_floor(samples: u64) -> u64 {
    samples / SAMPLES_PER_MS
}

/// Milliseconds covered by `samples` at 24 kHz, rounded to nearest.
pub fn samples_to_ms_round(samples: u64) -> u64 {
    (samples + SAMPLES_PER_MS / 2) / SAMPLES_PER_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_sample() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN, 12345, -12345];
        assert_eq!(decode_pcm16(&encode_pcm16(&samples)).unwrap(), samples);
    }

    #[test]
    fn encoding_is_little_endian() {
        // 0x0102 little-endian is [0x02, 0x01] -> base64 "AgE=".
        assert_eq!(encode_pcm16(&[0x0102]), "AgE=");
        assert_eq!(decode_pcm16("AgE=").unwrap(), vec![0x0102]);
    }

    #[test]
    fn empty_payload_is_no_samples() {
        assert_eq!(encode_pcm16(&[]), "");
        assert!(decode_pcm16("").unwrap().is_empty());
    }

    #[test]
    fn bad_base64_is_an_error() {
        assert!(matches!(
            decode_pcm16("not base64!"),
            Err(AudioDecodeError::Base64(_))
        ));
    }

    #[test]
    fn odd_byte_count_is_an_error() {
        // "AQID" is three bytes.
        assert_eq!(decode_pcm16("AQID"), Err(AudioDecodeError::OddLength(3)));
    }

    #[test]
    fn millisecond_conversion() {
        assert_eq!(samples_to_ms_floor(24_000), 1000);
        assert_eq!(samples_to_ms_floor(23), 0);
        assert_eq!(samples_to_ms_floor(47), 1);
        assert_eq!(samples_to_ms_round(11), 0);
        assert_eq!(samples_to_ms_round(12), 1);
        assert_eq!(samples_to_ms_round(36), 2);
    }
}
