//! Call recordings: one stereo WAV per call, the caller on the left, the agent on the right.
//!
//! The engine hands every call a [`RecordingTap`] (both directions, tick by tick, copied by the
//! media port into lock-free queues); a recorder thread per call drains it, resamples to
//! 16 kHz (telephone speech loses nothing; a minute is 3.8 MB instead of 11.5 MB at 48 kHz) and
//! writes the file. Nothing here runs on the real-time path. Files live under
//! `DATA_DIR/recordings/YYYY-MM-DD/` and are deleted after the retention period.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pjsip_safe::media::{RecordingTap, TapRead};
use pjsip_safe::CallId;

use crate::audio::resample::StreamResampler;

/// Sample rate of the recordings.
pub const RECORDING_RATE: u32 = 16_000;

/// Starts recording a call; the thread ends when the call's media port is gone and returns
/// the file's path.
pub fn start(
    call: CallId,
    tap: RecordingTap,
    dir: &Path,
) -> std::thread::JoinHandle<Option<PathBuf>> {
    start_then(call, tap, dir, |_| {})
}

/// [`start`], calling `done` with the file's path (or `None` on failure) when it is written.
pub fn start_then(
    call: CallId,
    tap: RecordingTap,
    dir: &Path,
    done: impl FnOnce(Option<PathBuf>) + Send + 'static,
) -> std::thread::JoinHandle<Option<PathBuf>> {
    let now = chrono::Utc::now();
    let day_dir = dir.join(now.format("%Y-%m-%d").to_string());
    let path = day_dir.join(format!("{}-{call}.wav", now.format("%Y%m%dT%H%M%SZ")));
    std::thread::Builder::new()
        .name(format!("record-{call}"))
        .spawn(move || {
            let result = match record(&tap, &day_dir, &path) {
                Ok(()) => {
                    let (up, down) = tap.dropped();
                    if up + down > 0 {
                        tracing::warn!(%call, up, down, "the recorder fell behind; frames were lost");
                    }
                    tracing::info!(%call, path = %path.display(), "recording saved");
                    Some(path)
                }
                Err(e) => {
                    tracing::error!(%call, path = %path.display(), "recording failed: {e}");
                    None
                }
            };
            done(result.clone());
            result
        })
        .expect("cannot start a recorder thread")
}

fn record(tap: &RecordingTap, day_dir: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(day_dir)?;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RECORDING_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    let frame = pjsip_safe::media::FRAME_SAMPLES;
    let mut left_rs = StreamResampler::new(pjsip_safe::media::SAMPLE_RATE, RECORDING_RATE, frame)?;
    let mut right_rs = StreamResampler::new(pjsip_safe::media::SAMPLE_RATE, RECORDING_RATE, frame)?;
    let (mut left, mut right) = (Vec::with_capacity(frame), Vec::with_capacity(frame));
    loop {
        match tap.next_pair_timeout(Duration::from_millis(200)) {
            TapRead::Pair(pair) => {
                left_rs.push(&pair.0, &mut left);
                right_rs.push(&pair.1, &mut right);
            }
            TapRead::Empty => continue,
            TapRead::Closed => {
                left_rs.finish(&mut left);
                right_rs.finish(&mut right);
            }
        }
        let n = left.len().min(right.len());
        for i in 0..n {
            writer.write_sample(left[i])?;
            writer.write_sample(right[i])?;
        }
        left.drain(..n);
        right.drain(..n);
        if tap_closed(tap) {
            break;
        }
    }
    writer.finalize()?;
    Ok(())
}

fn tap_closed(tap: &RecordingTap) -> bool {
    matches!(tap.next_pair(), TapRead::Closed)
}

/// Deletes recordings older than `retention` under `dir`; returns how many were deleted.
pub fn purge(dir: &Path, retention: Duration) -> usize {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
        return 0;
    };
    let mut deleted = 0;
    let Ok(days) = std::fs::read_dir(dir) else {
        return 0;
    };
    for day in days.flatten() {
        let Ok(files) = std::fs::read_dir(day.path()) else {
            continue;
        };
        for file in files.flatten() {
            let old = file
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old
                && file.path().extension().is_some_and(|e| e == "wav")
                && std::fs::remove_file(file.path()).is_ok()
            {
                deleted += 1;
            }
        }
        // Remove the day's folder once empty (fails harmlessly otherwise).
        let _ = std::fs::remove_dir(day.path());
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use pjsip_safe::media::tap_channel;

    #[test]
    fn a_recording_keeps_both_directions_on_their_own_channel() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, tap) = tap_channel();
        let handle = start(CallId(7), tap, dir.path());
        // 1 s: the caller says a 500 Hz tone, the agent is silent; then the reverse.
        for i in 0..100 {
            let mut tone = [0i16; 960];
            for (n, s) in tone.iter_mut().enumerate() {
                let t = (i * 960 + n) as f32 / 48000.0;
                *s = ((t * 500.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
            }
            let silence = [0i16; 960];
            let (caller, agent) = if i < 50 {
                (&tone, &silence)
            } else {
                (&silence, &tone)
            };
            rt.caller(caller);
            rt.agent(agent);
            if i % 40 == 39 {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        drop(rt);
        let path = handle.join().unwrap().expect("a recording");
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, RECORDING_RATE);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(
            samples.len(),
            2 * 16000,
            "2 s of stereo frames at 16 kHz → 1 s each half"
        );
        let energy = |from: usize, to: usize, ch: usize| -> f64 {
            samples[from * 2..to * 2]
                .chunks(2)
                .map(|p| f64::from(p[ch]).powi(2))
                .sum::<f64>()
                / (to - from) as f64
        };
        // First half: caller (left) loud, agent (right) silent; second half the reverse.
        assert!(energy(1000, 7000, 0) > 1e6 && energy(1000, 7000, 1) < 1e3);
        assert!(energy(9000, 15000, 1) > 1e6 && energy(9000, 15000, 0) < 1e3);
    }

    #[test]
    fn purge_deletes_only_old_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("a.wav"), b"x").unwrap();
        assert_eq!(purge(dir.path(), Duration::from_secs(3600)), 0);
        assert_eq!(purge(dir.path(), Duration::ZERO), 1);
        assert!(!day.exists(), "the empty day folder is removed");
    }
}
