//! German compounds split into words the catalog itself uses.
//!
//! German glues modifier and product word into one: "Blindkappe", "Messingstopfen",
//! "Kupferrohrbogen", "Isolierschlauch". A caller's compound is often in no catalog, but its
//! parts are, and the *last* part is the product word (the head: a "Blindkappe" is a Kappe).
//! A dictionary-based decompounder would know general German but not a shop's trade words, and
//! would split "Doppelnippel" into words that mean nothing to the catalog; splitting against the
//! catalog's own vocabulary keeps only splits the search can use, with no word list to maintain.
//!
//! Everything here works on folded, lower-case words and takes the vocabulary as a predicate over
//! stems, so the catalog index (while it is being built) and the query side use the same code.

use super::normalize::{stem, stem_str};

/// Shortest part of a compound ("end", "rohr", "kapp").
const MIN_PART: usize = 3;
/// Shortest part when the other part is unknown: guessing at shorter ones splits ordinary words.
const MIN_GUESSED: usize = 4;
/// Longer words are not split (bounds the quadratic search on hostile input).
pub const MAX_WORD: usize = 40;

fn is_known(piece: &str, known: &impl Fn(&str) -> bool) -> bool {
    known(stem_str(piece)) || known(piece)
}

/// Splits `word` into two or more parts that are all `known` (as stems), with as few parts as
/// possible and, among those, the longest head: "messingmuffe" → ["messing", "muff"],
/// "kesselfuellhahn" → ["kessel", "fuell", "hahn"]. The linking "s" of German compounds
/// ("dichtungs|sortiment") is removed by the stemmer. Parts are returned as stems.
pub fn split_known(word: &str, known: &impl Fn(&str) -> bool) -> Option<Vec<String>> {
    let n = word.len();
    if !word.is_ascii() || !(2 * MIN_PART..=MAX_WORD).contains(&n) {
        return None;
    }
    // best[i]: fewest parts covering word[..i], and where the last part starts.
    let mut best: Vec<Option<(u8, usize)>> = vec![None; n + 1];
    best[0] = Some((0, 0));
    for i in MIN_PART..=n {
        for j in 0..=i - MIN_PART {
            let Some((count, _)) = best[j] else {
                continue;
            };
            if i - j == n || !is_known(&word[j..i], known) {
                continue;
            }
            let cand = (count + 1, j);
            // Fewer parts first; then the earlier start, i.e. the longer last part.
            if best[i].is_none_or(|b| cand < b) {
                best[i] = Some(cand);
            }
        }
    }
    let mut parts = Vec::new();
    let mut i = n;
    while i > 0 {
        let (_, j) = best[i]?;
        parts.push(stem(&word[j..i]));
        i = j;
    }
    parts.reverse();
    (parts.len() >= 2).then_some(parts)
}

/// A known head after an unknown modifier: "blind|stopfen" → ("blind", "stopf"), the longest
/// known head first.
pub fn split_head(word: &str, known: &impl Fn(&str) -> bool) -> Option<(String, String)> {
    let n = word.len();
    if !word.is_ascii() || !(2 * MIN_GUESSED..=MAX_WORD).contains(&n) {
        return None;
    }
    (MIN_GUESSED..=n - MIN_GUESSED)
        .find(|&k| is_known(&word[k..], known) && stem_str(&word[k..]).len() >= MIN_GUESSED)
        .map(|k| (stem(&word[..k]), stem(&word[k..])))
}

/// A known modifier before an unknown head: "thermostat|ventil" → ("thermostat", "ventil"), the
/// longest known modifier first.
pub fn split_modifier(word: &str, known: &impl Fn(&str) -> bool) -> Option<(String, String)> {
    let n = word.len();
    if !word.is_ascii() || !(2 * MIN_GUESSED..=MAX_WORD).contains(&n) {
        return None;
    }
    (MIN_GUESSED..=n - MIN_GUESSED)
        .rev()
        .find(|&k| is_known(&word[..k], known))
        .map(|k| (stem(&word[..k]), stem(&word[k..])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn vocab(words: &[&str]) -> impl Fn(&str) -> bool {
        let set: HashSet<String> = words.iter().map(|w| stem(w)).collect();
        move |s: &str| set.contains(s)
    }

    #[test]
    fn splits_into_fewest_known_parts() {
        let v = vocab(&[
            "messing",
            "muffe",
            "kessel",
            "fuell",
            "hahn",
            "dichtung",
            "sortiment",
        ]);
        assert_eq!(
            split_known("messingmuffe", &v).unwrap(),
            vec!["messing", "muff"]
        );
        assert_eq!(
            split_known("messingmuffen", &v).unwrap(),
            vec!["messing", "muff"]
        );
        assert_eq!(
            split_known("kesselfuellhahn", &v).unwrap(),
            vec!["kessel", "fuell", "hahn"]
        );
        assert_eq!(
            split_known("dichtungssortiment", &v).unwrap(),
            vec!["dichtung", "sortiment"]
        );
        // A known word alone is not a compound; unknown parts give nothing.
        assert_eq!(split_known("messing", &v), None);
        assert_eq!(split_known("blindmuffe", &v), None);
    }

    #[test]
    fn guesses_one_unknown_side() {
        let v = vocab(&["stopfen", "thermostat", "kappe"]);
        assert_eq!(
            split_head("blindstopfen", &v),
            Some(("blind".into(), "stopf".into()))
        );
        assert_eq!(
            split_modifier("thermostatventil", &v),
            Some(("thermostat".into(), "ventil".into()))
        );
        // Too short to guess.
        assert_eq!(split_head("abkappe", &v), None);
        assert_eq!(split_head("bananenkiste", &v), None);
    }

    #[test]
    fn long_words_are_not_split() {
        let v = vocab(&["rohr"]);
        let long = "rohr".repeat(1000);
        assert_eq!(split_known(&long, &v), None);
        assert_eq!(split_head(&long, &v), None);
    }
}
