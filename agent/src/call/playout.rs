//! Playout: which model item each downlink sample belongs to, and what the caller heard of it.
//!
//! The count of samples played lives in ONE place: the engine's downlink ledger
//! (`pjsip_safe::media::DownlinkApi::{played_samples, received_samples}`, exact, per key). The
//! call machine reads it through [`Ledger`] and keeps only what the ledger cannot know: which
//! model item a key stands for and whether the model has finished it. (The conversation keeps the
//! number of samples the *model* sent per item, a protocol fact it clamps truncations with; that
//! is a different quantity, not a copy of this one.)
//!
//! The downlink resampler (24 kHz → 48 kHz) is here too: a key's 48 kHz samples are exactly twice
//! its 24 kHz samples once the item ends (see `audio::resample`), so a sample count read from the
//! ledger halves back to the model's clock.

use std::collections::VecDeque;
use std::time::Instant;

use crate::audio::resample::StreamResampler;
use crate::prompts::Prompt;

/// Downlink key of local prompts (apology, hold, recording notice); model items use small
/// increasing keys.
pub const PROMPT_KEY: u64 = u64::MAX - 1;

/// What the machine may read of the engine's downlink queue (and of the driver's backlog in
/// front of it). The driver passes the real queue; tests pass a fake.
pub trait Ledger {
    /// 48 kHz samples of `key` handed to PJSIP so far (final after a flush).
    fn played(&self, key: u64) -> u64;
    /// 48 kHz samples pushed under `key`.
    fn received(&self, key: u64) -> u64;
    /// Nothing waits in the driver's backlog (audio the queue had no room for yet).
    fn backlog_empty(&self) -> bool;
    /// Everything pushed has been played (or flushed) and the backlog is empty.
    fn drained(&self) -> bool;
}

/// The ledger of a call without media: nothing was ever played.
pub struct NoMedia;

impl Ledger for NoMedia {
    fn played(&self, _key: u64) -> u64 {
        0
    }
    fn received(&self, _key: u64) -> u64 {
        0
    }
    fn backlog_empty(&self) -> bool {
        true
    }
    fn drained(&self) -> bool {
        true
    }
}

/// One change to the engine's downlink queue, carried out by the driver in order.
#[derive(Debug, Clone, PartialEq)]
pub enum DownlinkOp {
    /// Append 48 kHz samples of `key`; audio the queue has no room for waits in the driver's
    /// backlog, in order. `received` is when the model's delta arrived, for the latency
    /// figures (`None` for the resampler's tail at the end of an item).
    Push {
        key: u64,
        pcm: Vec<i16>,
        received: Option<Instant>,
    },
    /// `key` is complete: pad and queue its last partial frame (after its backlog).
    End { key: u64 },
    /// Drop everything queued, the backlog included.
    Flush,
    /// Barge-in: drop everything queued (the backlog included), then call
    /// `CallMachine::handle_flushed` with the ledger.
    FlushForBargeIn,
    /// Stop a local prompt: flush the queue and forget the prompt's key (the backlog stays).
    StopPrompt,
    /// Forget a key's accounting in the ledger.
    Forget { key: u64 },
    /// Queue a local prompt now (under [`PROMPT_KEY`], bypassing the backlog: if the queue is
    /// full, the prompt is skipped).
    Prompt(Prompt),
}

/// A model item on its way to the caller.
#[derive(Debug)]
pub struct PlayItem {
    pub item_id: String,
    pub key: u64,
    /// The model sent its last audio (`AudioEnd`).
    pub ended: bool,
}

/// The model items queued for the caller, oldest first, and the downlink resampler.
pub struct Playout {
    items: VecDeque<PlayItem>,
    next_key: u64,
    down: StreamResampler,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("items", &self.items)
            .field("next_key", &self.next_key)
            .finish_non_exhaustive()
    }
}

impl Default for Playout {
    fn default() -> Self {
        Self::new()
    }
}

impl Playout {
    pub fn new() -> Self {
        Self {
            items: VecDeque::new(),
            next_key: 1,
            down: StreamResampler::new(24_000, 48_000, 480).expect("24 kHz -> 48 kHz is valid"),
        }
    }

    /// Whether `item_id`'s audio would start a new item (its first delta).
    pub fn is_new(&self, item_id: &str) -> bool {
        self.items
            .back()
            .is_none_or(|i| i.item_id != item_id || i.ended)
    }

    /// Resamples one delta of `item_id` (24 kHz) and returns its key and 48 kHz samples (empty
    /// while the resampler fills a chunk).
    pub fn play(&mut self, item_id: String, samples: &[i16]) -> (u64, Vec<i16>) {
        if self.is_new(&item_id) {
            self.down.reset();
            let key = self.next_key;
            self.next_key += 1;
            self.items.push_back(PlayItem {
                item_id,
                key,
                ended: false,
            });
        }
        let key = self.items.back().expect("pushed above").key;
        let mut out = Vec::with_capacity(samples.len() * 2 + 960);
        self.down.push(samples, &mut out);
        (key, out)
    }

    /// The model finished `item_id`: its key and the resampler's tail, if it is queued.
    pub fn end(&mut self, item_id: &str) -> Option<(u64, Vec<i16>)> {
        let item = self
            .items
            .iter_mut()
            .find(|i| i.item_id == item_id && !i.ended)?;
        item.ended = true;
        let key = item.key;
        let mut out = Vec::new();
        self.down.finish(&mut out);
        Some((key, out))
    }

    /// Barge-in: removes `item_id` and every later item (whose audio is being flushed). `None`
    /// when `item_id` is not queued.
    pub fn interrupt(&mut self, item_id: &str) -> Vec<PlayItem> {
        self.down.reset();
        let from = self
            .items
            .iter()
            .position(|i| i.item_id == item_id)
            .unwrap_or(self.items.len());
        self.items.drain(from..).collect()
    }

    /// The oldest item, once the caller heard all of it.
    pub fn pop_heard(&mut self, ledger: &dyn Ledger) -> Option<PlayItem> {
        let item = self.items.front()?;
        let heard = item.ended
            && ledger.backlog_empty()
            && ledger.played(item.key) >= ledger.received(item.key);
        if heard {
            self.items.pop_front()
        } else {
            None
        }
    }

    /// Forgets every item (the backend failed; nothing more of the model plays).
    pub fn clear(&mut self) {
        self.items.clear();
        self.down.reset();
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        played: u64,
        received: u64,
    }

    impl Ledger for Fake {
        fn played(&self, _key: u64) -> u64 {
            self.played
        }
        fn received(&self, _key: u64) -> u64 {
            self.received
        }
        fn backlog_empty(&self) -> bool {
            true
        }
        fn drained(&self) -> bool {
            self.played >= self.received
        }
    }

    #[test]
    fn an_item_is_heard_once_ended_and_fully_played() {
        let mut p = Playout::new();
        let (key, _) = p.play("a".into(), &[100; 2400]);
        assert_eq!(key, 1);
        assert!(!p.is_new("a"));
        let half = Fake {
            played: 2400,
            received: 4800,
        };
        let all = Fake {
            played: 4800,
            received: 4800,
        };
        assert!(p.pop_heard(&all).is_none(), "not ended yet");
        let (k, _tail) = p.end("a").expect("queued");
        assert_eq!(k, key);
        assert!(p.is_new("a"), "after its end the same id starts anew");
        assert!(p.pop_heard(&half).is_none());
        assert_eq!(p.pop_heard(&all).map(|i| i.item_id), Some("a".into()));
        assert!(p.is_empty());
    }

    #[test]
    fn a_whole_item_resamples_to_exactly_twice_its_length() {
        let mut p = Playout::new();
        let (_, a) = p.play("a".into(), &[1000; 1000]);
        let (_, b) = p.play("a".into(), &[1000; 1234]);
        let (_, tail) = p.end("a").expect("queued");
        assert_eq!(a.len() + b.len() + tail.len(), 2 * 2234);
    }

    #[test]
    fn barge_in_takes_the_item_and_every_later_one() {
        let mut p = Playout::new();
        p.play("a".into(), &[1; 480]);
        p.end("a");
        p.play("b".into(), &[1; 480]);
        p.play("c".into(), &[1; 480]);
        let cut: Vec<String> = p.interrupt("b").into_iter().map(|i| i.item_id).collect();
        assert_eq!(cut, ["b", "c"]);
        assert!(p.interrupt("zzz").is_empty());
        assert!(!p.is_empty(), "a stays until heard");
    }
}
