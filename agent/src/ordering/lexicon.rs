//! The customers' own words for a catalog: trade names, brands, regional words and abbreviations,
//! each standing for catalog words or for articles.
//!
//! Installers order "Fermit", "Armaflex" or "eine Bride"; none of these is in a wholesaler's
//! catalog export, and no amount of stemming or fuzzy matching gets from a brand to a product
//! word. The catalog's `synonyms` column names other words *per article*; the lexicon is the
//! shop-wide list that a shop edits without code when callers keep using a word the search does
//! not know (format in docs/CATALOG.md). A small built-in part holds general trade
//! abbreviations (VA, Ms, Cu …); a catalog's `lexicon.txt` can override any of its entries.
//!
//! Parsing and rewriting are pure functions of text; the catalog loader reads the file and checks
//! that referenced articles exist.

use std::collections::HashMap;

use super::normalize::{fold, stem};

/// Name of the lexicon file inside a catalog directory (optional).
pub const FILE_NAME: &str = "lexicon.txt";

/// General trade words every catalog gets (same format as a `lexicon.txt`).
const BUILTIN: &str = "\
niro | inox | va | v2a | v4a | nirosta | edelstahl rostfrei = Edelstahl
ms = Messing
cu = Kupfer
rg = Rotguss
tee = T
teflon | ptfe = Teflonband
ig = Innengewinde
ag = Aussengewinde
";

/// Longest phrase (in whitespace-separated tokens) a key may span in a query.
const MAX_KEY_TOKENS: usize = 4;
/// Longest key in bytes; longer keys cannot be said in one phrase anyway.
const MAX_KEY_LEN: usize = 60;

/// One line of the lexicon.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What callers say, folded, with separators removed ("neofermit", "loctite55").
    pub keys: Vec<String>,
    /// Catalog words that replace it (folded, space-separated); empty if it names only articles.
    pub words: String,
    /// Article numbers it stands for, as written in the file.
    pub articles: Vec<String>,
    /// 1-based line in the file (0 for built-in entries).
    pub line: u64,
}

/// A problem in a lexicon file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexiconError {
    pub line: u64,
    pub message: String,
}

/// A query after the lexicon was applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewrite {
    /// The folded query with every recognised phrase replaced by its catalog words.
    pub text: String,
    /// Articles named by recognised phrases.
    pub articles: Vec<String>,
}

/// Parsed lexicon: entries and a key → entry map (keys and their stems).
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    entries: Vec<Entry>,
    by_key: HashMap<String, usize>,
}

/// "Neo-Fermit" → "neofermit": folded, only letters and digits, so that a key matches however
/// speech recognition splits or hyphenates it.
fn key_form(s: &str) -> String {
    fold(s).chars().filter(|c| c.is_alphanumeric()).collect()
}

impl Lexicon {
    /// The built-in trade abbreviations alone.
    pub fn builtin() -> Lexicon {
        // The built-in text is part of the code and covered by a test; it always parses.
        Lexicon::parse(BUILTIN).0
    }

    /// The built-in entries, overridden and extended by a catalog's own lexicon.
    pub fn with_catalog(catalog: Lexicon) -> Lexicon {
        let mut out = catalog;
        for mut e in Lexicon::builtin().entries {
            e.keys.retain(|k| !out.by_key.contains_key(k));
            if !e.keys.is_empty() {
                out.push(e);
            }
        }
        out
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn push(&mut self, e: Entry) {
        let i = self.entries.len();
        for k in &e.keys {
            self.by_key.entry(k.clone()).or_insert(i);
            self.by_key.entry(stem(k)).or_insert(i);
        }
        self.entries.push(e);
    }

    /// Parses lexicon text: one entry per line, `what callers say = what it means`, alternatives
    /// on either side separated by `|`; `Artikel <number>` on the right names an article;
    /// `#` starts a comment line. Returns the good lines and every problem with its line.
    pub fn parse(text: &str) -> (Lexicon, Vec<LexiconError>) {
        let mut lex = Lexicon::default();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i as u64 + 1;
            let l = raw.trim().trim_start_matches('\u{feff}');
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut problems: Vec<String> = Vec::new();
            let mut err = |message: String| problems.push(message);
            let Some((left, right)) = l.split_once('=') else {
                errors.push(LexiconError {
                    line,
                    message: format!(
                        "expected `words callers say = catalog words` (or `= Artikel <number>`), \
                         got `{l}`"
                    ),
                });
                continue;
            };
            let mut keys = Vec::new();
            for k in left.split('|').map(str::trim) {
                let key = key_form(k);
                if !key.chars().any(char::is_alphabetic) {
                    err(format!(
                        "`{k}` is not a word (a key needs at least one letter)"
                    ));
                } else if key.len() < 2 || key.len() > MAX_KEY_LEN {
                    err(format!(
                        "`{k}` must have between 2 and {MAX_KEY_LEN} letters or digits"
                    ));
                } else if let Some(first) = seen.get(&key) {
                    err(format!("`{k}` is already defined on line {first}"));
                } else {
                    seen.insert(key.clone(), line);
                    keys.push(key);
                }
            }
            let mut words = Vec::new();
            let mut articles = Vec::new();
            for item in right.split('|').map(str::trim) {
                let lower = item.to_lowercase();
                let article = lower == "artikel" || lower.starts_with("artikel ");
                if let Some(no) = article.then(|| item["artikel".len()..].trim()) {
                    if no.is_empty() || no.contains(char::is_whitespace) {
                        err(format!(
                            "`{item}`: expected `Artikel <number>` with one article number"
                        ));
                    } else {
                        articles.push(no.to_string());
                    }
                } else if item.chars().any(char::is_alphabetic) {
                    words.push(fold(item));
                } else {
                    err(format!(
                        "`{item}` is neither catalog words nor `Artikel <number>`"
                    ));
                }
            }
            if problems.is_empty() && (keys.is_empty() || (words.is_empty() && articles.is_empty()))
            {
                problems.push("both sides of `=` need at least one entry".into());
            }
            if !problems.is_empty() {
                errors.extend(
                    problems
                        .into_iter()
                        .map(|message| LexiconError { line, message }),
                );
                continue;
            }
            lex.push(Entry {
                keys,
                words: words.join(" "),
                articles,
                line,
            });
        }
        (lex, errors)
    }

    /// The catalog words a single word stands for, if the lexicon maps it to words.
    pub fn words_for(&self, word: &str) -> Option<&str> {
        let e = &self.entries[*self.by_key.get(word)?];
        (!e.words.is_empty()).then_some(e.words.as_str())
    }

    /// Replaces every phrase of a folded query that the lexicon knows (longest first, up to
    /// [`MAX_KEY_TOKENS`] tokens) by its catalog words, and collects the articles it names.
    pub fn rewrite(&self, folded: &str) -> Rewrite {
        // Tokens with their byte spans; text between tokens is kept as it is ("3,5" stays).
        let mut tokens: Vec<(usize, usize)> = Vec::new();
        let mut start = None;
        for (i, c) in folded.char_indices() {
            let sep = c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')');
            match (sep, start) {
                (true, Some(st)) => {
                    tokens.push((st, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(st) = start {
            tokens.push((st, folded.len()));
        }
        let keys: Vec<String> = tokens
            .iter()
            .map(|&(st, en)| {
                folded[st..en]
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect()
            })
            .collect();
        let mut out = Rewrite::default();
        let mut text = String::with_capacity(folded.len());
        let mut copied = 0;
        let mut i = 0;
        while i < tokens.len() {
            let mut hit = None;
            if keys[i].chars().any(char::is_alphabetic) {
                let mut joined = String::new();
                let mut candidates = Vec::new();
                for (n, k) in keys[i..].iter().take(MAX_KEY_TOKENS).enumerate() {
                    joined.push_str(k);
                    if joined.len() > MAX_KEY_LEN {
                        break;
                    }
                    candidates.push((n + 1, joined.clone()));
                }
                hit = candidates.into_iter().rev().find_map(|(n, k)| {
                    self.by_key
                        .get(&k)
                        .or_else(|| self.by_key.get(&stem(&k)))
                        .map(|&e| (n, e))
                });
            }
            match hit {
                Some((n, e)) => {
                    let e = &self.entries[e];
                    text.push_str(&folded[copied..tokens[i].0]);
                    text.push_str(&e.words);
                    copied = tokens[i + n - 1].1;
                    out.articles.extend(e.articles.iter().cloned());
                    i += n;
                }
                None => i += 1,
            }
        }
        text.push_str(&folded[copied..]);
        out.text = text;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses() {
        let (b, errors) = Lexicon::parse(BUILTIN);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(b.entries().len() >= 5);
        assert_eq!(b.words_for("va"), Some("edelstahl"));
        assert_eq!(b.words_for("tee"), Some("t"));
    }

    #[test]
    fn parses_keys_words_and_articles() {
        let (l, errors) = Lexicon::parse(
            "# Marken\n\
             Fermit | Neo-Fermit = Dichtpaste\n\
             \n\
             Unipak = Artikel 500024 | Artikel 500025\n\
             Loctite 55 = Gewindedichtfaden | Artikel 500026\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let e = l.entries();
        assert_eq!(e[0].keys, vec!["fermit", "neofermit"]);
        assert_eq!(e[0].words, "dichtpaste");
        assert_eq!(e[0].line, 2);
        assert_eq!(e[1].articles, vec!["500024", "500025"]);
        assert!(e[1].words.is_empty());
        assert_eq!(e[2].keys, vec!["loctite55"]);
    }

    #[test]
    fn reports_every_bad_line() {
        let e = Lexicon::parse(
            "Fermit Dichtpaste\n\
             42 = Muffe\n\
             Fermit = Dichtpaste\n\
             FERMIT | Neo Fermit = Dichtpaste\n\
             Bride = 17\n\
             Stoppel = Artikel\n",
        )
        .1;
        let lines: Vec<u64> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 5, 6], "{e:?}");
        assert!(e[2].message.contains("already defined on line 3"), "{e:?}");
    }

    #[test]
    fn rewrites_phrases_however_they_are_split() {
        let l = Lexicon::with_catalog(
            Lexicon::parse("Neo-Fermit | Fermit = Dichtpaste\nLoctite 55 = Artikel 500026\n").0,
        );
        let r = l.rewrite(&fold("Neo Fermit in der Tube"));
        assert_eq!(r.text, "dichtpaste in der tube");
        let r = l.rewrite(&fold("zwei Rollen Loctite 55"));
        assert_eq!(r.text, "zwei rollen ");
        assert_eq!(r.articles, vec!["500026"]);
        // Plural via the stem, built-ins still there.
        assert_eq!(l.rewrite("fermits").text, "dichtpaste");
        assert_eq!(l.rewrite("t-stueck 3/4 va").text, "t-stueck 3/4 edelstahl");
        assert_eq!(l.rewrite("muffe 3/4 messing").text, "muffe 3/4 messing");
        // Decimal commas and other text between words survive.
        assert_eq!(
            l.rewrite("verbundrohr 40 x 3,5, va").text,
            "verbundrohr 40 x 3,5, edelstahl"
        );
    }

    #[test]
    fn catalog_overrides_builtin() {
        let l = Lexicon::with_catalog(Lexicon::parse("VA = Vollanschluss\n").0);
        assert_eq!(l.words_for("va"), Some("vollanschluss"));
        assert_eq!(l.words_for("niro"), Some("edelstahl"));
    }
}
