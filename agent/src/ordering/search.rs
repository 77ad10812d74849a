//! Product search for spoken queries: an in-memory inverted index over normalised word stems and
//! typed sizes, with trigram-filtered edit distance for speech-to-text errors.
//!
//! Why not a full-text engine (tantivy): product names are short, the vocabulary is small (a few
//! thousand stems even for 100,000 articles), and the hard part is domain parsing (German number
//! words, inch fractions, DN ↔ inch, compounds split or joined by speech recognition, article
//! numbers read digit by digit), which a generic engine would not do for us. A hand-sized index
//! answers in microseconds to a few milliseconds, builds in well under a second, and keeps the
//! agent's compile time low.
//!
//! A query goes through these steps:
//!
//! 1. An article number wins outright: written ("100003", "300 012", "4-0-0-0-0-2") or spoken
//!    digit by digit or in groups ("sechs null null null eins acht"). A spoken sequence that
//!    looks like an article number but is none is taken out of the query (it is not a size) and
//!    reported.
//! 2. The catalog's lexicon replaces trade, brand and regional words by catalog words (or names
//!    articles), see [`super::lexicon`].
//! 3. Words become terms: one word, or two or three joined ("T Stück" → "tstueck"); a compound
//!    the catalog does not have is split into parts it has ([`super::compound`]); otherwise the
//!    closest stems by edit distance, or stems the word begins.
//!
//! Scoring: each term adds `quality × idf` of its best stem per product. On top, a product whose
//! *family* the query named gets [`FAMILY_WEIGHT`], more than a matching size and material
//! together: the family words are its category, its synonyms and the head (last part) of these
//! when they are compounds ("Rohr" is the family of a Kupferrohr, not of a Rohrschelle); the
//! first part of a family word counts as a short form at [`SHORT_FORM`] ("Kugel" → Kugelhahn).
//! Each size the caller said adds a fixed weight when the product has it (DN and inch count as
//! equivalent); the nearest existing millimetre sizes get a little, so "16 mm" finds 15 and 18;
//! a product with another angle than the one said loses as much as a family is worth. Left-over
//! ties go to the unit the caller named (else to pieces and metres before packs and coils), then
//! to the plainer article, then to the size most common in the product's family. Results close to the best score form the "ambiguous group",
//! whose differing attributes tell the model what to ask.

use std::collections::{HashMap, HashSet};

use super::compound;
use super::lexicon::Lexicon;
use super::normalize::{self, stem, stem_str, NumberRun, Word};
use super::vocabulary::{Dim, Product, Unit};

/// Weight of a size the caller said explicitly ("22 mm", "3/4 Zoll", "DN 20").
const DIM_WEIGHT: f32 = 3.0;
/// Weight of a DN/inch equivalent ("DN 20" for a 3/4" product).
const DIM_EQUIV_WEIGHT: f32 = 2.4;
/// Weight of a bare number that may be a size ("T-Stück 22").
const SOFT_DIM_WEIGHT: f32 = 1.0;
/// Most a neighbouring size gets ("16 mm" for a 15 mm product), scaled by closeness.
const NEAR_DIM_WEIGHT: f32 = 0.8;
/// A named product family; more than a size and a material together, so that the product the
/// caller named beats other products that merely share size and material.
pub const FAMILY_WEIGHT: f32 = 6.0;
/// Share of the family weight for the first part of a family word ("Kugel" for Kugelhahn).
pub const SHORT_FORM: f32 = 0.7;
/// Extra weight of articles the lexicon names for a caller's word.
const LEXICON_ARTICLE_WEIGHT: f32 = 2.0;
/// Products sold in the unit the caller named ("eine Packung", "zwei Rollen").
const UNIT_WEIGHT: f32 = 0.5;
/// Without a unit from the caller, the article sold per piece or metre before packs and coils.
const BASE_UNIT_WEIGHT: f32 = 0.1;
/// A product with another angle than the caller said: as much as a named family, so that
/// "Winkel 45 Grad" finds the 45° Bogen, not a 90° Winkel.
const ANGLE_CONFLICT: f32 = FAMILY_WEIGHT;
/// Per-stem penalty so that, all else equal, the plainer article ranks first.
const LENGTH_PENALTY: f32 = 0.02;
/// At most this for the family's most common size (a tiebreak, below every real signal).
const PRIOR_WEIGHT: f32 = 0.015;
/// Results below this share of the best score are dropped.
const KEEP_RATIO: f32 = 0.5;
/// Results within this share of the best score count as equally good ("ambiguous").
const GROUP_RATIO: f32 = 0.93;
/// Most candidates inspected for the ambiguous group.
const GROUP_MAX: usize = 12;
/// Longest query read, in bytes; a spoken order is far shorter, hostile input is cut.
pub const MAX_QUERY_BYTES: usize = 400;
/// Most content words turned into terms.
const MAX_WORDS: usize = 24;
/// Article numbers are compared by their letters and digits only, at most this long.
const MAX_ARTICLE_KEY: usize = 24;

/// Posting flags (low bits): the stem counts with full weight (else half: the first part of a
/// compound), it names the product's family, or it is the first part of a family word.
const FULL: u32 = 1;
const SHORT: u32 = 2;
const FAMILY: u32 = 4;
const FLAG_BITS: u32 = 3;

/// The built index. Product positions are indices into the catalog's product list.
pub struct SearchIndex {
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    /// Per stem: `product << FLAG_BITS | flags`.
    postings: Vec<Vec<u32>>,
    idf: Vec<f32>,
    trigrams: HashMap<[u8; 3], Vec<u32>>,
    dims: HashMap<u64, Vec<u32>>,
    /// Per dimension kind (the high bits of [`Dim::key`]): the values that exist, sorted.
    dim_values: HashMap<u64, Vec<u64>>,
    word_count: Vec<u16>,
    prior: Vec<f32>,
    /// Article number by its letters and digits, lower case ("100003", "ab12").
    articles: HashMap<String, u32>,
    lexicon: Lexicon,
}

/// One ranked product.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index into [`crate::ordering::Catalog::products`].
    pub index: usize,
    pub score: f32,
    /// Whether the product has every size the caller said.
    pub sizes_match: bool,
}

/// What the search understood of the query, for the model to check and to echo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Understood {
    /// Sizes as read ("3/4\"", "22 mm", "DN 20").
    pub sizes: Vec<String>,
    /// A quantity with unit found in the query ("zehn Meter").
    pub quantity: Option<(f64, Unit)>,
    /// Query words that matched nothing in the catalog.
    pub unmatched: Vec<String>,
    /// Digits said like an article number that is not in the catalog ("400009").
    pub unknown_article: Option<String>,
}

/// The outcome of [`SearchIndex::search`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// More than one product fits about equally well: the model should ask.
    pub ambiguous: bool,
    /// For an ambiguous result: attribute name → the differing values within the top group
    /// (e.g. `("material", ["Messing", "Rotguss"])`).
    pub distinguishing: Vec<(&'static str, Vec<String>)>,
    /// How many hits form the ambiguous group (the first `group_len` hits).
    pub group_len: usize,
    pub understood: Understood,
}

/// Digits that look like an article number none has, with their byte spans in the query.
type UnknownRun = (String, Vec<(usize, usize)>);

/// A query term: alternative stems with their match quality; a product counts its best one.
/// `head` is false for the leading parts of a split compound, which do not name the family.
struct Term {
    alts: Vec<(u32, f32)>,
    head: bool,
}

fn trigrams_of(stem: &str) -> Vec<[u8; 3]> {
    let padded: Vec<u8> = std::iter::once(b'^')
        .chain(stem.bytes())
        .chain(std::iter::once(b'$'))
        .collect();
    let mut t: Vec<[u8; 3]> = padded.windows(3).map(|w| [w[0], w[1], w[2]]).collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// "AB-12/3" → "ab123".
fn article_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A product's texts, each with whether it names the product's family (category, synonyms) or
/// not (name, material, connection).
fn product_fields(p: &Product) -> impl Iterator<Item = (&str, bool)> {
    std::iter::once(p.category.as_str())
        .chain(p.synonyms.iter().map(String::as_str))
        .map(|t| (t, true))
        .chain(
            [&p.name, &p.material, &p.connection]
                .into_iter()
                .map(|t| (t.as_str(), false)),
        )
}

/// Builds the product side of compound splitting: which stems exist, and how each catalog word
/// splits into them. Words the catalog uses alone are known; a compound with one known side
/// makes its other side known too ("Blind|stopfen" teaches "blind", "Thermostat|ventil" teaches
/// "ventil"), in two rounds so that what one compound teaches helps split another.
struct Splitter {
    known: HashSet<String>,
    memo: HashMap<String, Option<Vec<String>>>,
}

impl Splitter {
    fn new<'a>(all_words: impl Iterator<Item = &'a Word>, lexicon: &Lexicon) -> Splitter {
        let all_words: Vec<&Word> = all_words.collect();
        let mut known: HashSet<String> = HashSet::new();
        for w in &all_words {
            for t in std::iter::once(&w.text).chain(w.parts.iter().filter(|p| p.len() >= 3)) {
                known.insert(stem(t));
                if let Some(target) = lexicon.words_for(t) {
                    known.extend(target.split_whitespace().map(stem));
                }
            }
        }
        let mut singles: Vec<&str> = all_words
            .iter()
            .filter(|w| w.parts.len() == 1)
            .map(|w| w.text.as_str())
            .collect();
        singles.sort_unstable();
        singles.dedup();
        for _ in 0..2 {
            let mut learned = Vec::new();
            for w in &singles {
                let k = |s: &str| known.contains(s);
                if compound::split_known(w, &k).is_some() {
                    continue;
                }
                if let Some((m, h)) =
                    compound::split_head(w, &k).or_else(|| compound::split_modifier(w, &k))
                {
                    learned.push(m);
                    learned.push(h);
                }
            }
            known.extend(learned);
        }
        Splitter {
            known,
            memo: HashMap::new(),
        }
    }

    /// The parts (stems) of a catalog word, head last; `None` if it is not a compound.
    fn parts(&mut self, w: &Word) -> Option<Vec<String>> {
        if w.parts.len() > 1 {
            let parts: Vec<String> = w
                .parts
                .iter()
                .filter(|p| p.len() >= 3)
                .map(|p| stem(p))
                .collect();
            return (!parts.is_empty()).then_some(parts);
        }
        if let Some(hit) = self.memo.get(&w.text) {
            return hit.clone();
        }
        let known = &self.known;
        let k = |s: &str| known.contains(s);
        let parts = compound::split_known(&w.text, &k);
        self.memo.insert(w.text.clone(), parts.clone());
        parts
    }
}

/// Stems of one product text, each with its flags (see [`FULL`], [`FAMILY`], [`SHORT`]).
fn field_stems(
    words: &[Word],
    fam: bool,
    splitter: &mut Splitter,
    lexicon: &Lexicon,
    out: &mut Vec<(String, u32)>,
) {
    let push = |text: &str, flags: u32, out: &mut Vec<(String, u32)>| {
        out.push((stem(text), flags));
        if let Some(target) = lexicon.words_for(text) {
            out.extend(target.split_whitespace().map(|t| (stem(t), flags)));
        }
    };
    for w in words {
        let head_flags = if fam { FULL | FAMILY } else { FULL };
        push(&w.text, head_flags, out);
        if let Some(parts) = splitter.parts(w) {
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                let flags = match (i == last, fam) {
                    (true, _) => head_flags,
                    (false, true) => SHORT,
                    (false, false) => 0,
                };
                push(part, flags, out);
            }
        }
    }
}

/// Sorts stems and merges the flags of repeated ones.
fn merge_stems(mut stems: Vec<(String, u32)>) -> Vec<(String, u32)> {
    stems.sort_unstable();
    let mut merged: Vec<(String, u32)> = Vec::with_capacity(stems.len());
    for (s, f) in stems {
        match merged.last_mut() {
            Some((ls, lf)) if *ls == s => *lf |= f,
            _ => merged.push((s, f)),
        }
    }
    merged
}

fn product_dims(p: &Product) -> Vec<Dim> {
    let mut d = p.dims.clone();
    d.extend(p.angle.map(Dim::Angle));
    d.extend(p.pressure.map(Dim::Pn));
    d
}

/// How much a family credit from these flags is worth (1 for a family word, less for a short
/// form, 0 otherwise).
fn family_credit(flags: u32) -> f32 {
    if flags & FAMILY != 0 {
        1.0
    } else if flags & SHORT != 0 {
        SHORT_FORM
    } else {
        0.0
    }
}

impl SearchIndex {
    pub fn build(products: &[Product], lexicon: Lexicon) -> SearchIndex {
        // Two passes over the texts rather than keeping every product's words: with 100,000
        // articles that would be hundreds of MB at peak. Texts other than names repeat a lot
        // (categories, synonyms, materials) and are analysed once.
        let mut distinct: HashMap<String, Word> = HashMap::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for p in products {
            for (t, _) in product_fields(p) {
                if seen.insert(t) {
                    for w in normalize::analyze(t).words {
                        distinct.entry(w.text.clone()).or_insert(w);
                    }
                }
            }
        }
        drop(seen);
        let mut splitter = Splitter::new(distinct.values(), &lexicon);
        drop(distinct);
        let mut field_cache: HashMap<(&str, bool), Vec<(String, u32)>> = HashMap::new();

        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut stems: Vec<String> = Vec::new();
        let mut postings: Vec<Vec<u32>> = Vec::new();
        let mut dims: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut word_count = Vec::with_capacity(products.len());
        for (i, p) in products.iter().enumerate() {
            let mut ps: Vec<(String, u32)> = Vec::new();
            for (t, fam) in product_fields(p) {
                if t == p.name {
                    let words = normalize::analyze(t).words;
                    field_stems(&words, fam, &mut splitter, &lexicon, &mut ps);
                } else {
                    let cached = field_cache.entry((t, fam)).or_insert_with(|| {
                        let mut v = Vec::new();
                        let words = normalize::analyze(t).words;
                        field_stems(&words, fam, &mut splitter, &lexicon, &mut v);
                        v
                    });
                    ps.extend(cached.iter().cloned());
                }
            }
            let ps = merge_stems(ps);
            word_count.push(u16::try_from(ps.len()).unwrap_or(u16::MAX));
            for (s, flags) in ps {
                let id = *vocab.entry(s).or_insert_with_key(|k| {
                    stems.push(k.clone());
                    postings.push(Vec::new());
                    (stems.len() - 1) as u32
                });
                postings[id as usize].push(((i as u32) << FLAG_BITS) | flags);
            }
            let mut pd = product_dims(p);
            pd.sort_unstable();
            pd.dedup();
            for d in pd {
                dims.entry(d.key()).or_default().push(i as u32);
            }
        }
        let n = products.len().max(1) as f32;
        let idf = postings
            .iter()
            .map(|p| (1.0 + n / p.len() as f32).ln())
            .collect();
        let mut trigrams: HashMap<[u8; 3], Vec<u32>> = HashMap::new();
        for (id, w) in stems.iter().enumerate() {
            for t in trigrams_of(w) {
                trigrams.entry(t).or_default().push(id as u32);
            }
        }
        let mut dim_values: HashMap<u64, Vec<u64>> = HashMap::new();
        for &k in dims.keys() {
            dim_values.entry(k >> 32).or_default().push(k);
        }
        for v in dim_values.values_mut() {
            v.sort_unstable();
        }
        // Tiebreak prior: how common the product's first size is within its category.
        let mut freq: HashMap<(&str, u64), u32> = HashMap::new();
        for p in products {
            if let Some(d) = p.dims.first() {
                *freq.entry((p.category.as_str(), d.key())).or_default() += 1;
            }
        }
        let mut top: HashMap<&str, u32> = HashMap::new();
        for (&(c, _), &f) in &freq {
            let t = top.entry(c).or_default();
            *t = (*t).max(f);
        }
        let prior = products
            .iter()
            .map(|p| match p.dims.first() {
                Some(d) => {
                    let f = freq[&(p.category.as_str(), d.key())] as f32;
                    PRIOR_WEIGHT * f / top[p.category.as_str()] as f32
                }
                None => 0.0,
            })
            .collect();
        let mut articles: HashMap<String, u32> = HashMap::new();
        let mut clashes: HashSet<String> = HashSet::new();
        for (i, p) in products.iter().enumerate() {
            let k = article_key(&p.article_no);
            if k.len() > MAX_ARTICLE_KEY || !k.chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            if articles.insert(k.clone(), i as u32).is_some() {
                clashes.insert(k);
            }
        }
        for k in clashes {
            articles.remove(&k); // "100-003" and "100003": only the exact number finds them
        }
        SearchIndex {
            vocab,
            words: stems,
            postings,
            idf,
            trigrams,
            dims,
            dim_values,
            word_count,
            prior,
            articles,
            lexicon,
        }
    }

    fn exact(&self, stem: &str) -> Option<u32> {
        self.vocab.get(stem).copied()
    }

    /// Vocabulary stems within a length-dependent edit distance (speech-to-text misspellings).
    fn fuzzy(&self, s: &str) -> Vec<(u32, f32)> {
        let len = s.chars().count();
        let k = match len {
            0..=3 => return Vec::new(),
            4..=5 => 1,
            6..=9 => 2,
            10..=compound::MAX_WORD => 3,
            _ => return Vec::new(),
        };
        let tri = trigrams_of(s);
        let need = tri.len().saturating_sub(3 * k).max(1);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for t in &tri {
            if let Some(ids) = self.trigrams.get(t) {
                for &id in ids {
                    *counts.entry(id).or_insert(0) += 1;
                }
            }
        }
        let mut out: Vec<(u32, usize)> = counts
            .into_iter()
            .filter(|&(_, c)| c >= need)
            .filter_map(|(id, _)| {
                let w = &self.words[id as usize];
                if w.chars().count().abs_diff(len) > k {
                    return None;
                }
                let d = strsim::osa_distance(s, w);
                (d <= k).then_some((id, d))
            })
            .collect();
        out.sort_unstable_by_key(|&(id, d)| (d, id));
        out.truncate(5);
        out.into_iter()
            .map(|(id, d)| (id, 1.0 - 0.12 * d as f32))
            .collect()
    }

    /// Stems the word begins or ends: "verbund" → "verbundrohr", a short form of a compound.
    fn partial(&self, s: &str) -> Vec<(u32, f32)> {
        if s.len() < 4 || s.len() > compound::MAX_WORD {
            return Vec::new();
        }
        let mut out: Vec<(u32, f32)> = self
            .words
            .iter()
            .enumerate()
            .filter_map(|(id, w)| {
                if w.len() > s.len() && w.starts_with(s) {
                    Some((id as u32, 0.6))
                } else if s.len() >= 5 && w.len() > s.len() && w.ends_with(s) {
                    Some((id as u32, 0.75))
                } else {
                    None
                }
            })
            .collect();
        out.truncate(20);
        out
    }

    fn terms(&self, words: &[String], unmatched: &mut Vec<String>) -> Vec<Term> {
        let known = |s: &str| self.vocab.contains_key(s);
        let one = |id: u32, q: f32, head: bool| Term {
            alts: vec![(id, q)],
            head,
        };
        let n = words.len();
        let mut terms = Vec::new();
        let mut i = 0;
        'outer: while i < n {
            for len in [3, 2] {
                if i + len <= n {
                    let joined = stem(&words[i..i + len].concat());
                    if let Some(id) = self.exact(&joined) {
                        terms.push(one(id, 1.0, true));
                        i += len;
                        continue 'outer;
                    }
                }
            }
            let w = words[i].as_str();
            let s = stem_str(w);
            if let Some(id) = self.exact(s) {
                terms.push(one(id, 1.0, true));
                i += 1;
                continue;
            }
            if let Some(parts) = compound::split_known(w, &known) {
                let last = parts.len() - 1;
                for (k, part) in parts.iter().enumerate() {
                    if let Some(id) = self.exact(part) {
                        terms.push(one(id, 0.9, k == last));
                    }
                }
                i += 1;
                continue;
            }
            if i + 1 < n && self.exact(stem_str(&words[i + 1])).is_none() {
                let f = self.fuzzy(&stem(&words[i..i + 2].concat()));
                if !f.is_empty() {
                    terms.push(Term {
                        alts: f,
                        head: true,
                    });
                    i += 2;
                    continue;
                }
            }
            let mut f = self.fuzzy(s);
            if f.is_empty() {
                if let Some((_, head)) = compound::split_head(w, &known) {
                    f = self.exact(&head).map(|id| (id, 0.8)).into_iter().collect();
                }
            }
            if f.is_empty() {
                f = self.partial(s);
            }
            if f.is_empty() {
                unmatched.push(words[i].clone());
            } else {
                terms.push(Term {
                    alts: f,
                    head: true,
                });
            }
            i += 1;
        }
        terms
    }

    /// An article number in the query: a written token with letters and digits ("AB-12"), or a
    /// run of numbers ("300 012", "sechs null null null eins acht"). Without a cue word
    /// ("Artikel", "Nummer") a number needs at least four digits, so sizes and quantities never
    /// count; a single spoken number needs the cue. Returns the product, or the spans of runs
    /// that look like an unknown article number.
    fn find_article(&self, folded: &str) -> Result<u32, Vec<UnknownRun>> {
        for tok in folded.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
            let k = article_key(tok);
            if k.chars().any(|c| c.is_ascii_alphabetic()) && k.chars().any(|c| c.is_ascii_digit()) {
                if let Some(&i) = self.articles.get(&k) {
                    return Ok(i);
                }
            }
        }
        let mut unknown = Vec::new();
        for run in normalize::number_runs(folded) {
            if let Some(i) = self.article_in_run(&run) {
                return Ok(i);
            }
            let all: String = run.pieces.concat();
            if all.len() >= 5 || (run.cue && all.len() >= 3) {
                unknown.push((all, run.spans.clone()));
            }
        }
        Err(unknown)
    }

    fn article_in_run(&self, run: &NumberRun) -> Option<u32> {
        let n = run.pieces.len();
        for len in (1..=n).rev() {
            for start in 0..=n - len {
                let pieces = &run.pieces[start..start + len];
                let digits: usize = pieces.iter().map(String::len).sum();
                if digits > MAX_ARTICLE_KEY {
                    continue;
                }
                let accept = run.cue
                    || if len == 1 {
                        run.written[start] && digits >= 4
                    } else {
                        digits >= 4
                    };
                if !accept {
                    continue;
                }
                if let Some(&i) = self.articles.get(&pieces.concat()) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Ranked search. An article number in the query wins outright.
    pub fn search(&self, products: &[Product], query: &str, limit: usize) -> SearchResult {
        let limit = limit.clamp(1, 50);
        let mut cut = query.len().min(MAX_QUERY_BYTES);
        while !query.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut folded = normalize::fold(&query[..cut]);
        let mut unknown_article = None;
        match self.find_article(&folded) {
            Ok(i) => {
                return SearchResult {
                    hits: vec![Hit {
                        index: i as usize,
                        score: 100.0,
                        sizes_match: true,
                    }],
                    group_len: 1,
                    ..Default::default()
                }
            }
            Err(unknown) => {
                // Digits of an unknown article number are not sizes: take them out.
                for (digits, spans) in unknown {
                    unknown_article.get_or_insert(digits);
                    for (st, en) in spans {
                        folded.replace_range(st..en, &" ".repeat(en - st));
                    }
                }
            }
        }
        let rewrite = self.lexicon.rewrite(&folded);
        let a = normalize::analyze_folded(&rewrite.text);
        let mut understood = Understood {
            sizes: a.dims.iter().map(|d| d.to_string()).collect(),
            quantity: a.quantity,
            unmatched: Vec::new(),
            unknown_article,
        };
        let words: Vec<String> = a
            .words
            .iter()
            .take(MAX_WORDS)
            .map(|w| w.text.clone())
            .collect();
        let terms = self.terms(&words, &mut understood.unmatched);

        let n = products.len();
        let mut score = vec![0f32; n];
        let mut best = vec![0f32; n];
        let mut family = vec![0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut cands: Vec<u32> = Vec::new();
        // Word terms: the best stem per product, half weight for a compound's first parts.
        let mut scratch: Vec<u32> = Vec::new();
        for term in &terms {
            for &(id, q) in &term.alts {
                let val = q * self.idf[id as usize];
                for &e in &self.postings[id as usize] {
                    let p = (e >> FLAG_BITS) as usize;
                    let flags = e & ((1 << FLAG_BITS) - 1);
                    let v = if flags & FULL != 0 { val } else { val * 0.5 };
                    if best[p] == 0.0 {
                        scratch.push(p as u32);
                    }
                    if v > best[p] {
                        best[p] = v;
                    }
                    if term.head {
                        let c = q * family_credit(flags);
                        if c > family[p] {
                            family[p] = c;
                        }
                    }
                }
            }
            for p in scratch.drain(..) {
                let s = &mut score[p as usize];
                if *s == 0.0 {
                    cands.push(p);
                }
                *s += best[p as usize];
                best[p as usize] = 0.0;
            }
        }
        // Articles the lexicon names count like their family named.
        for no in &rewrite.articles {
            if let Some(&p) = self.articles.get(&article_key(no)) {
                if score[p as usize] == 0.0 {
                    cands.push(p);
                }
                score[p as usize] += LEXICON_ARTICLE_WEIGHT;
                family[p as usize] = 1.0;
            }
        }
        let mut add_term = |alts: &mut dyn Iterator<Item = (&[u32], f32)>,
                            score: &mut [f32],
                            counts: Option<&mut [u8]>| {
            for (post, val) in alts {
                for &p in post {
                    let b = &mut best[p as usize];
                    if *b == 0.0 {
                        touched.push(p);
                    }
                    if val > *b {
                        *b = val;
                    }
                }
            }
            let mut counts = counts;
            for p in touched.drain(..) {
                let s = &mut score[p as usize];
                if *s == 0.0 {
                    cands.push(p);
                }
                *s += best[p as usize];
                best[p as usize] = 0.0;
                if let Some(c) = counts.as_deref_mut() {
                    c[p as usize] += 1;
                }
            }
        };
        let empty: Vec<u32> = Vec::new();
        let posting = |d: Dim| self.dims.get(&d.key()).unwrap_or(&empty).as_slice();
        let mut dim_hits = vec![0u8; if a.dims.is_empty() { 0 } else { n }];
        for d in &a.dims {
            let mut alts: Vec<(&[u32], f32)> = vec![(posting(*d), DIM_WEIGHT)];
            for e in equivalents(*d) {
                alts.push((posting(e), DIM_EQUIV_WEIGHT));
            }
            add_term(&mut alts.into_iter(), &mut score, Some(&mut dim_hits[..]));
        }
        for d in a.dims.iter().take(2) {
            let near = self.near(*d);
            if !near.is_empty() {
                let mut alts = near.iter().map(|&(k, w)| {
                    (
                        self.dims.get(&k).unwrap_or(&empty).as_slice(),
                        NEAR_DIM_WEIGHT * w,
                    )
                });
                add_term(&mut alts, &mut score, None);
            }
        }
        if !a.soft_dims.is_empty() {
            let mut alts = a.soft_dims.iter().map(|d| (posting(*d), SOFT_DIM_WEIGHT));
            add_term(&mut alts, &mut score, None);
        }

        let unit = a.quantity.map(|(_, u)| u);
        let angles: Vec<u32> = a
            .dims
            .iter()
            .filter_map(|d| match d {
                Dim::Angle(x) => Some(*x),
                _ => None,
            })
            .collect();
        let mut ranked: Vec<(u32, f32)> = cands
            .iter()
            .map(|&p| {
                let i = p as usize;
                let unit_bonus = match unit {
                    Some(u) if u == products[i].unit => UNIT_WEIGHT,
                    None if matches!(products[i].unit, Unit::Stueck | Unit::Meter) => {
                        BASE_UNIT_WEIGHT
                    }
                    _ => 0.0,
                };
                // "Winkel 45 Grad": a product with another angle contradicts the caller.
                let conflict = match products[i].angle {
                    Some(x) if !angles.is_empty() && !angles.contains(&x) => ANGLE_CONFLICT,
                    _ => 0.0,
                };
                (
                    p,
                    score[i] + FAMILY_WEIGHT * family[i] + unit_bonus + self.prior[i]
                        - conflict
                        - LENGTH_PENALTY * f32::from(self.word_count[i]),
                )
            })
            .collect();
        let cmp = |a: &(u32, f32), b: &(u32, f32)| {
            b.1.total_cmp(&a.1).then_with(|| {
                products[a.0 as usize]
                    .article_no
                    .cmp(&products[b.0 as usize].article_no)
            })
        };
        let keep = limit.max(GROUP_MAX);
        if ranked.len() > keep {
            ranked.select_nth_unstable_by(keep - 1, cmp);
            ranked.truncate(keep);
        }
        ranked.sort_unstable_by(cmp);
        let top = ranked.first().map_or(0.0, |r| r.1);
        if top <= 0.5 {
            return SearchResult {
                understood,
                ..Default::default()
            };
        }
        ranked.retain(|r| r.1 >= top * KEEP_RATIO);
        let group_len = ranked
            .iter()
            .take_while(|r| r.1 >= top * GROUP_RATIO)
            .count()
            .min(GROUP_MAX);
        let group: Vec<&Product> = ranked[..group_len]
            .iter()
            .map(|r| &products[r.0 as usize])
            .collect();
        let distinguishing = if group_len > 1 {
            distinguishing(&group)
        } else {
            Vec::new()
        };
        let need = a.dims.len() as u8;
        let hits = ranked
            .iter()
            .take(limit)
            .map(|&(p, s)| Hit {
                index: p as usize,
                score: s,
                sizes_match: need == 0 || dim_hits[p as usize] >= need,
            })
            .collect();
        SearchResult {
            hits,
            ambiguous: group_len > 1,
            distinguishing,
            group_len,
            understood,
        }
    }

    /// The existing millimetre sizes next to `d` (one below and one above, not `d` itself), each
    /// with its closeness in 0..1: "16 mm" → 15 mm and 18 mm.
    fn near(&self, d: Dim) -> Vec<(u64, f32)> {
        // Only millimetres: a pipe said as "16 mm" may be the 15 or the 18; inch and DN sizes are
        // a fixed series that callers name exactly, and their neighbours are other products.
        if !matches!(d, Dim::Mm(_)) {
            return Vec::new();
        }
        let key = d.key();
        let Some(values) = self.dim_values.get(&(key >> 32)) else {
            return Vec::new();
        };
        let at = values.partition_point(|&v| v < key);
        let below = at.checked_sub(1).map(|i| values[i]);
        let above = values[at..].iter().copied().find(|&v| v != key);
        let q = (key & 0xffff_ffff) as f32;
        [below, above]
            .into_iter()
            .flatten()
            .filter_map(|k| {
                let v = (k & 0xffff_ffff) as f32;
                let rel = (v - q).abs() / q.max(1.0);
                (rel < 0.5).then_some((k, 1.0 - rel))
            })
            .collect()
    }
}

/// DN and inch sizes that the trade uses interchangeably.
fn equivalents(d: Dim) -> Vec<Dim> {
    match d {
        Dim::Inch(e) => Dim::inch_to_dn(e).map(Dim::Dn).into_iter().collect(),
        Dim::Dn(v) => (1..=64)
            .filter(|&e| Dim::inch_to_dn(e) == Some(v))
            .map(Dim::Inch)
            .collect(),
        _ => Vec::new(),
    }
}

/// Attributes whose values differ within the group, in the order a salesperson would ask.
fn distinguishing(group: &[&Product]) -> Vec<(&'static str, Vec<String>)> {
    type Attr = (&'static str, fn(&Product) -> String);
    let attrs: [Attr; 8] = [
        ("category", |p| p.category.clone()),
        ("size", |p| p.size_label()),
        ("material", |p| p.material.clone()),
        ("connection", |p| p.connection.clone()),
        ("angle", |p| {
            p.angle.map(|a| format!("{a}°")).unwrap_or_default()
        }),
        ("pressure", |p| {
            p.pressure.map(|v| format!("PN {v}")).unwrap_or_default()
        }),
        ("unit", |p| p.unit.as_str().to_string()),
        ("name", |p| p.name.clone()),
    ];
    let mut out = Vec::new();
    for (name, get) in attrs {
        let mut vals: Vec<String> = Vec::new();
        for p in group {
            let v = get(p);
            if !v.is_empty() && !vals.contains(&v) {
                vals.push(v);
            }
        }
        if vals.len() > 1 {
            // Names only when nothing structured tells the products apart.
            if name == "name" && !out.is_empty() {
                continue;
            }
            out.push((name, vals));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::ordering::Catalog;
    use std::path::Path;

    fn catalog() -> Catalog {
        let csv = "article_no,name,category,size,material,connection,pressure,angle,unit,price_eur,synonyms\n\
            1,\"T-Stück 3/4\"\" Messing\",T-Stück,3/4 Zoll,Messing,Gewinde,,,Stück,4.19,Tee-Stück\n\
            2,\"T-Stück 3/4\"\" Edelstahl\",T-Stück,3/4 Zoll,Edelstahl,Gewinde,,,Stück,8.00,Tee-Stück\n\
            3,\"T-Stück 1/2\"\" Messing\",T-Stück,1/2 Zoll,Messing,Gewinde,,,Stück,3.10,Tee-Stück\n\
            4,Kupferrohr 15 mm,Kupferrohr,15 mm,Kupfer,Pressen,,,Meter,6.50,Cu-Rohr\n\
            5,Kupferrohr 22 mm,Kupferrohr,22 mm,Kupfer,Pressen,,,Meter,9.75,Cu-Rohr\n\
            6,\"Kugelhahn 3/4\"\" Messing\",Kugelhahn,3/4 Zoll,Messing,Gewinde,PN 25,,Stück,10.00,Absperrhahn\n";
        Catalog::from_csv(Path::new("t.csv"), csv).unwrap()
    }

    fn top(c: &Catalog, q: &str) -> String {
        let r = c.search(q, 3);
        r.hits
            .first()
            .map(|h| c.products()[h.index].article_no.clone())
            .unwrap_or_default()
    }

    #[test]
    fn finds_by_spoken_forms() {
        let c = catalog();
        assert_eq!(top(&c, "T-Stück dreiviertel Zoll Messing"), "1");
        assert_eq!(top(&c, "tee stueck halbzoll messing"), "3");
        assert_eq!(top(&c, "T Stück ¾\" Edelstahl"), "2");
        assert_eq!(top(&c, "zehn Meter Kupferrohr fünfzehn Millimeter"), "4");
        assert_eq!(top(&c, "kupfer rohr zweiundzwanziger"), "5");
        assert_eq!(top(&c, "Kugelhan DN 20"), "6");
        assert_eq!(top(&c, "Artikel 5 bitte"), "5");
    }

    #[test]
    fn ambiguity_names_the_differing_attribute() {
        let c = catalog();
        let r = c.search("T-Stück dreiviertel", 5);
        assert!(r.ambiguous);
        assert_eq!(r.group_len, 2);
        assert_eq!(
            r.distinguishing,
            vec![(
                "material",
                vec!["Messing".to_string(), "Edelstahl".to_string()]
            )]
        );
        assert_eq!(r.understood.sizes, vec!["3/4\""]);
    }

    #[test]
    fn nonsense_finds_nothing_and_reports_words() {
        let c = catalog();
        let r = c.search("Bananenkiste", 5);
        assert!(r.hits.is_empty());
        assert_eq!(r.understood.unmatched, vec!["bananenkiste"]);
    }
    /// A second catalog with the traps of issue 17: fittings that share size and material with
    /// pipes, compounds, six-digit article numbers, a lexicon.
    fn trade_catalog() -> Catalog {
        let csv = "article_no,name,category,size,material,connection,pressure,angle,unit,price_eur,synonyms\n\
            100027,\"Kappe 1/2\"\" Messing\",Kappe,1/2 Zoll,Messing,Gewinde,,,Stück,1.00,Endkappe\n\
            100043,\"Stopfen 1/2\"\" Messing\",Stopfen,1/2 Zoll,Messing,Gewinde,,,Stück,1.00,Blindstopfen\n\
            100093,\"T-Stück 3/4\"\" verzinkt\",T-Stück,3/4 Zoll,verzinkt,Gewinde,,,Stück,2.00,\n\
            100100,\"Muffe 3/4\"\" verzinkt\",Muffe,3/4 Zoll,verzinkt,Gewinde,,,Stück,1.00,\n\
            100107,\"Winkel 90° 3/4\"\" verzinkt\",Winkel,3/4 Zoll,verzinkt,Gewinde,,90°,Stück,1.50,Knie\n\
            100113,\"Bogen 45° 3/4\"\" verzinkt\",Bogen,3/4 Zoll,verzinkt,Gewinde,,45°,Stück,2.00,Rohrbogen\n\
            300031,\"Gewinderohr 3/4\"\" verzinkt\",Stahlrohr,3/4 Zoll,verzinkt,Gewinde,,,Meter,9.00,Siederohr\n\
            300002,\"Kupferrohr 15 mm, Stange\",Kupferrohr,15 mm,Kupfer,Pressen,,,Meter,6.50,\n\
            300003,\"Kupferrohr 18 mm, Stange\",Kupferrohr,18 mm,Kupfer,Pressen,,,Meter,7.80,\n\
            300010,\"Kupferrohr 15 mm weich, Ring 25 m\",Kupferrohr,15 mm,Kupfer,Pressen,,,Rolle,155.00,Kupferring\n\
            300021,\"Mehrschichtverbundrohr 40 x 3,5 mm\",Mehrschichtverbundrohr,40 mm x 3.5 mm,PE-X/Alu,Pressen,,,Meter,4.75,\n\
            300019,Mehrschichtverbundrohr 32 x 3 mm,Mehrschichtverbundrohr,32 mm x 3 mm,PE-X/Alu,Pressen,,,Meter,3.80,\n\
            400020,\"Kugelhahn 1/2\"\" Messing\",Kugelhahn,1/2 Zoll,Messing,Gewinde,,,Stück,8.00,\n\
            500024,\"Dichtpaste für Hanf, Dose 250 g\",Dichtpaste,,,,,,Dose,6.40,\n\
            500025,\"Dichtpaste für Hanf, Tube 65 g\",Dichtpaste,,,,,,Tube,3.20,\n\
            600002,Rohrschelle 15 mm,Rohrschelle,15 mm,verzinkt,,,,Stück,0.85,Schelle\n";
        let lexicon = "Fermit | Neo-Fermit = Dichtpaste\nLieblingshahn = Artikel 400020\n";
        Catalog::from_csv_with_lexicon(Path::new("t.csv"), csv, Path::new("lexicon.txt"), lexicon)
            .unwrap()
    }

    fn top3(c: &Catalog, q: &str) -> Vec<String> {
        c.search(q, 3)
            .hits
            .iter()
            .map(|h| c.products()[h.index].article_no.clone())
            .collect()
    }

    #[test]
    fn spoken_article_numbers_win_and_unknown_ones_are_not_sizes() {
        let c = trade_catalog();
        for q in [
            "eins null null null neun drei",
            "Artikel 100 093",
            "Nummer 1-0-0-0-9-3",
            "Artikelnummer eins null null null dreiundneunzig",
            "Art.-Nr. 100.093, zwei Stück",
        ] {
            assert_eq!(top3(&c, q), vec!["100093"], "{q}");
        }
        // An unknown number is reported, and its "zwei" is no 2" size.
        let r = c.search("Muffe Nummer vier null null null null zwei", 3);
        assert_eq!(r.understood.unknown_article.as_deref(), Some("400002"));
        assert!(r.understood.sizes.is_empty(), "{:?}", r.understood);
        assert_eq!(c.products()[r.hits[0].index].article_no, "100100");
        // Sizes and quantities are not article numbers.
        assert_eq!(top(&c, "Kupferrohr 15 mm 18 Meter"), "300002");
    }

    #[test]
    fn family_outranks_size_and_material() {
        let c = trade_catalog();
        // "Blindkappe": split into "blind" + "kappe"; the head names the family.
        assert_eq!(top(&c, "Blindkappe halbzoll Messing"), "100027");
        // "Rohr" + size + material: the pipe, not the fittings of that size and material.
        assert_eq!(top(&c, "Rohr dreiviertel verzinkt"), "300031");
        assert_eq!(top(&c, "Rohr 15 Kupfer"), "300002");
        // A short form: the first part of a family word.
        assert_eq!(top(&c, "Kugel halbzoll"), "400020");
        // The family weight is larger than a size and a material together.
        const { assert!(super::FAMILY_WEIGHT > super::DIM_WEIGHT + 2.5) };
    }

    #[test]
    fn dimension_pairs_near_sizes_and_units() {
        let c = trade_catalog();
        assert_eq!(top(&c, "Verbundrohr 40 x 3,5"), "300021");
        assert_eq!(top(&c, "Verbundrohr vierzig mal drei komma fünf"), "300021");
        // No 16 mm pipe: the closest sizes, the closer first; not article order.
        let near = top3(&c, "Kupferrohr 16 mm");
        assert_eq!(near[0], "300002");
        assert!(near.contains(&"300003".to_string()), "{near:?}");
        assert_eq!(top(&c, "Kupferrohr 17,5 mm"), "300003");
        // The unit the caller named decides between rod and coil.
        assert_eq!(top(&c, "eine Rolle Kupferrohr 15"), "300010");
        assert_eq!(top(&c, "zehn Meter Kupferrohr 15"), "300002");
        assert_eq!(top(&c, "Kupferrohr 15"), "300002");
        // An explicit angle beats the family word: a 45° "Winkel" is the Bogen.
        assert_eq!(top(&c, "Winkel dreiviertel verzinkt"), "100107");
        assert_eq!(top(&c, "Winkel 45 Grad dreiviertel verzinkt"), "100113");
    }

    #[test]
    fn lexicon_words_and_articles() {
        let c = trade_catalog();
        assert_eq!(top(&c, "Neo Fermit Tube"), "500025");
        assert_eq!(top(&c, "eine Dose Fermit"), "500024");
        assert_eq!(top(&c, "Lieblingshahn"), "400020");
        // Built-in abbreviations still work next to the catalog's lexicon.
        assert_eq!(top(&c, "Kugelhahn 1/2 Ms"), "400020");
    }

    #[test]
    fn hostile_queries_stay_fast_and_bounded() {
        let c = trade_catalog();
        let queries = [
            "Rohr ".repeat(10_000),
            "1".repeat(100_000),
            "eins ".repeat(10_000),
            "- / , . ; x mal".repeat(5_000),
            "zweiundzwanzigtausenddreihundert".repeat(500),
            "ä€\u{301}".repeat(10_000),
            "Kupferrohrmessingmuffenblindkappenstopfen".repeat(100),
            String::new(),
        ];
        for q in &queries {
            let t = std::time::Instant::now();
            let r = c.search(q, 50);
            assert!(r.hits.len() <= 50);
            assert!(r.understood.unmatched.len() <= super::MAX_WORDS);
            assert!(
                t.elapsed() < std::time::Duration::from_millis(200),
                "{} ms for a query of {} bytes",
                t.elapsed().as_millis(),
                q.len()
            );
        }
    }
}
