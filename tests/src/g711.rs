//! G.711 A-law and µ-law, both directions.
//!
//! SIPp cannot record and cannot encode: it streams raw codec bytes from a
//! file and the harness captures the far end's RTP itself. So the harness
//! encodes what SIPp sends and decodes what it receives. The algorithms are the
//! classic segment/quantisation tables of ITU-T G.711 (as in the public-domain
//! Sun reference `g711.c`); they are a few lines each, which is why there is
//! no crate dependency for them.

/// Which G.711 companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// PCMA, RTP payload type 8.
    A,
    /// PCMU, RTP payload type 0.
    Mu,
}

impl Law {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::A => 8,
            Law::Mu => 0,
        }
    }

    /// The SDP encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Law::A => "PCMA",
            Law::Mu => "PCMU",
        }
    }

    pub fn encode(self, pcm: i16) -> u8 {
        match self {
            Law::A => linear_to_alaw(pcm),
            Law::Mu => linear_to_ulaw(pcm),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::A => alaw_to_linear(code),
            Law::Mu => ulaw_to_linear(code),
        }
    }

    pub fn encode_all(self, pcm: &[i16]) -> Vec<u8> {
        pcm.iter().map(|&s| self.encode(s)).collect()
    }

    pub fn decode_all(self, codes: &[u8]) -> Vec<i16> {
        codes.iter().map(|&c| self.decode(c)).collect()
    }
}

const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const BIAS: i32 = 0x84;
const CLIP: i32 = 8159;

fn segment(value: i32, table: &[i32; 8]) -> usize {
    table.iter().position(|&end| value <= end).unwrap_or(8)
}

pub fn linear_to_alaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let quant = if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (((seg as i32) << 4 | quant) ^ mask) as u8
}

pub fn alaw_to_linear(code: u8) -> i16 {
    let a = i32::from(code ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

pub fn linear_to_ulaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(CLIP) + (BIAS >> 2);
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let u = (seg as i32) << 4 | ((v >> (seg + 1)) & 0xF);
    (u ^ mask) as u8
}

pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = i32::from(!code);
    let mut t = ((u & 0x0F) << 3) + BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snr_db(a: &[i16], b: &[i16]) -> f64 {
        let sig: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
        let err: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        10.0 * (sig / err.max(1e-9)).log10()
    }

    #[test]
    fn silence_codes_are_the_standard_ones() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert!(alaw_to_linear(0xD5).abs() <= 8);
        assert_eq!(ulaw_to_linear(0xFF), 0);
    }

    #[test]
    fn round_trip_keeps_a_sine_at_g711_quality() {
        let x: Vec<i16> = (0..8000)
            .map(|i| {
                (12000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16
            })
            .collect();
        for law in [Law::A, Law::Mu] {
            let y = law.decode_all(&law.encode_all(&x));
            let snr = snr_db(&x, &y);
            assert!(snr > 30.0, "{law:?} snr {snr:.1} dB");
        }
    }

    #[test]
    fn decoding_is_monotonic_over_all_codes() {
        for law in [Law::A, Law::Mu] {
            let mut pairs: Vec<(i16, u8)> = (0..=255u8).map(|c| (law.decode(c), c)).collect();
            pairs.sort();
            for (v, c) in pairs {
                assert_eq!(law.decode(law.encode(v)), v, "{law:?} code {c:#x}");
            }
        }
    }
}
