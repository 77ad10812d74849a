//! Which pushed samples belong to which key, in stream positions (API side only).
//!
//! Every sample the API side pushes gets a position in one ever-growing downlink stream;
//! frame `n` covers positions `n*960 .. (n+1)*960`. Padding occupies positions but belongs to no
//! key. The real-time side publishes only "frames up to `n` were handed to PJSIP", so the played
//! samples of a key are its ranges that lie below `n*960`. A flush cuts every range at the played
//! position, after which nothing above the cut can ever count as played; later pushes start at
//! the next frame boundary above everything that was discarded.

use std::collections::HashMap;
use std::ops::Range;

#[derive(Debug, Default)]
struct KeyRecord {
    received: u64,
    /// Disjoint, ascending. Usually one; more only if the caller interleaves keys or a flush cut.
    ranges: Vec<Range<u64>>,
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    keys: HashMap<u64, KeyRecord>,
}

impl Ledger {
    /// Records that `key` owns positions `start .. start + len`.
    pub(crate) fn append(&mut self, key: u64, start: u64, len: u64) {
        let rec = self.keys.entry(key).or_default();
        rec.received += len;
        if len == 0 {
            return;
        }
        match rec.ranges.last_mut() {
            Some(last) if last.end == start => last.end += len,
            _ => rec.ranges.push(start..start + len),
        }
    }

    /// Makes sure `key` is known (so `received` of an empty response is 0, not unknown).
    pub(crate) fn touch(&mut self, key: u64) {
        self.keys.entry(key).or_default();
    }

    pub(crate) fn received(&self, key: u64) -> u64 {
        self.keys.get(&key).map_or(0, |r| r.received)
    }

    /// Samples of `key` below stream position `played_pos`.
    pub(crate) fn played(&self, key: u64, played_pos: u64) -> u64 {
        self.keys.get(&key).map_or(0, |r| {
            r.ranges
                .iter()
                .map(|rg| rg.end.min(played_pos).saturating_sub(rg.start))
                .sum()
        })
    }

    /// Discards every position at or above `cut`; returns how many key samples that removed.
    pub(crate) fn truncate(&mut self, cut: u64) -> u64 {
        let mut removed = 0;
        for rec in self.keys.values_mut() {
            rec.ranges.retain_mut(|rg| {
                if rg.end > cut {
                    let new_end = cut.max(rg.start);
                    removed += rg.end - new_end;
                    rg.end = new_end;
                }
                !rg.is_empty()
            });
        }
        removed
    }

    pub(crate) fn forget(&mut self, key: u64) {
        self.keys.remove(&key);
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_counts_only_below_position() {
        let mut l = Ledger::default();
        l.append(1, 0, 1000);
        l.append(2, 1000, 2000);
        assert_eq!(l.played(1, 960), 960);
        assert_eq!(l.played(2, 960), 0);
        assert_eq!(l.played(1, 1920), 1000);
        assert_eq!(l.played(2, 1920), 920);
        assert_eq!(l.played(2, 100_000), 2000);
        assert_eq!(l.played(3, 100_000), 0);
        assert_eq!(l.received(2), 2000);
    }

    #[test]
    fn interleaved_keys_keep_separate_ranges() {
        let mut l = Ledger::default();
        l.append(1, 0, 100);
        l.append(2, 100, 100);
        l.append(1, 200, 100);
        l.append(1, 300, 50); // merges with the previous range
        assert_eq!(l.received(1), 250);
        assert_eq!(l.played(1, 250), 150);
        assert_eq!(l.played(1, 10_000), 250);
        assert_eq!(l.played(2, 150), 50);
    }

    #[test]
    fn truncate_cuts_and_reports_removed() {
        let mut l = Ledger::default();
        l.append(1, 0, 1000);
        l.append(2, 1000, 500);
        l.append(3, 1500, 10);
        assert_eq!(l.truncate(960), 40 + 500 + 10);
        assert_eq!(l.played(1, u64::MAX), 960);
        assert_eq!(l.played(2, u64::MAX), 0);
        assert_eq!(
            l.received(2),
            500,
            "received is what was pushed, cut or not"
        );
        assert_eq!(l.truncate(960), 0);
        l.forget(1);
        assert_eq!(l.received(1), 0);
        assert_eq!(l.len(), 2);
    }
}
