//! Product search for spoken queries: an in-memory inverted index over normalised word stems and
//! typed sizes, with trigram-filtered edit distance for speech-to-text errors.
//!
//! Why not a full-text engine (tantivy): product names are short, the vocabulary is small (a few
//! thousand stems even for 100,000 articles), and the hard part is domain parsing (German number
//! words, inch fractions, DN ↔ inch, compounds split or joined by speech recognition), which a
//! generic engine would not do for us. A hand-sized index answers in microseconds to a few
//! milliseconds, builds in well under a second, and keeps the agent's compile time low.
//!
//! Scoring: every query term (one word, or two or three words joined: "T Stück" → "tstueck",
//! "Kugel Hahn" → "kugelhahn") adds `weight × idf` of its best-matching stem per product; exact
//! stems weigh 1, fuzzy ones less per edit, prefix/suffix parts of compounds less still. Each size
//! the caller said adds a fixed weight when the product has it (DN and inch count as equivalent),
//! so the right size outranks every wrong one. Results close to the best score form the
//! "ambiguous group", whose differing attributes tell the model what to ask.

use std::collections::HashMap;

use super::catalog::{Product, Unit};
use super::normalize::{self, stem, Dim};

/// Weight of a size the caller said explicitly ("22 mm", "3/4 Zoll", "DN 20").
const DIM_WEIGHT: f32 = 3.0;
/// Weight of a DN/inch equivalent ("DN 20" for a 3/4" product).
const DIM_EQUIV_WEIGHT: f32 = 2.4;
/// Weight of a bare number that may be a size ("T-Stück 22").
const SOFT_DIM_WEIGHT: f32 = 1.0;
/// Per-word penalty so that, all else equal, the plainer article ranks first.
const LENGTH_PENALTY: f32 = 0.02;
/// Results below this share of the best score are dropped.
const KEEP_RATIO: f32 = 0.5;
/// Results within this share of the best score count as equally good ("ambiguous").
const GROUP_RATIO: f32 = 0.93;
/// Most candidates inspected for the ambiguous group.
const GROUP_MAX: usize = 12;

/// Spoken or written material abbreviations and trade names.
fn alias(word: &str) -> &str {
    match word {
        "niro" | "inox" | "va" | "vierka" | "nirosta" | "edelstahlrostfrei" => "edelstahl",
        "ms" => "messing",
        "cu" => "kupfer",
        "rg" => "rotguss",
        "tee" => "t",
        "teflon" | "ptfe" => "teflonband",
        w => w,
    }
}

/// The built index. Product positions are indices into the catalog's product list.
pub struct SearchIndex {
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    postings: Vec<Vec<u32>>,
    idf: Vec<f32>,
    trigrams: HashMap<[u8; 3], Vec<u32>>,
    dims: HashMap<u64, Vec<u32>>,
    word_count: Vec<u16>,
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

/// A query term: alternative stems with weights; a product counts its best one.
type Term = Vec<(u32, f32)>;

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

/// Stems a product is found by: name, category, synonyms, material, connection.
fn product_stems(p: &Product) -> Vec<String> {
    let mut out = Vec::new();
    let texts = [&p.name, &p.category, &p.material, &p.connection]
        .into_iter()
        .chain(p.synonyms.iter());
    for t in texts {
        for w in normalize::analyze(t).words {
            out.push(stem(alias(&w.text)));
            if w.parts.len() > 1 {
                out.extend(w.parts.iter().filter(|p| p.len() >= 3).map(|p| stem(p)));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn product_dims(p: &Product) -> Vec<Dim> {
    let mut d = p.dims.clone();
    d.extend(p.angle.map(Dim::Angle));
    d.extend(p.pressure.map(Dim::Pn));
    d
}

impl SearchIndex {
    pub fn build(products: &[Product]) -> SearchIndex {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut words: Vec<String> = Vec::new();
        let mut postings: Vec<Vec<u32>> = Vec::new();
        let mut dims: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut word_count = Vec::with_capacity(products.len());
        for (i, p) in products.iter().enumerate() {
            let stems = product_stems(p);
            word_count.push(u16::try_from(stems.len()).unwrap_or(u16::MAX));
            for s in stems {
                let id = *vocab.entry(s).or_insert_with_key(|k| {
                    words.push(k.clone());
                    postings.push(Vec::new());
                    (words.len() - 1) as u32
                });
                postings[id as usize].push(i as u32);
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
        for (id, w) in words.iter().enumerate() {
            for t in trigrams_of(w) {
                trigrams.entry(t).or_default().push(id as u32);
            }
        }
        SearchIndex {
            vocab,
            words,
            postings,
            idf,
            trigrams,
            dims,
            word_count,
        }
    }

    fn exact(&self, stem: &str) -> Option<u32> {
        self.vocab.get(stem).copied()
    }

    /// Vocabulary stems within a length-dependent edit distance (speech-to-text misspellings).
    fn fuzzy(&self, s: &str) -> Term {
        let len = s.chars().count();
        let k = match len {
            0..=3 => return Vec::new(),
            4..=5 => 1,
            6..=9 => 2,
            _ => 3,
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

    /// Compound parts: "verbundrohr" in "mehrschichtverbundrohr", "kupfer" in "kupferrohr".
    fn partial(&self, s: &str) -> Term {
        if s.len() < 4 {
            return Vec::new();
        }
        let mut out: Term = self
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

    /// Splits a glued word into two known stems: "messingmuffe" → "messing" + "muff".
    fn split(&self, w: &str) -> Option<(u32, u32)> {
        let b = w.as_bytes();
        (3..b.len().saturating_sub(2))
            .filter(|&k| w.is_char_boundary(k))
            .find_map(|k| {
                let l = self.exact(&stem(alias(&w[..k])))?;
                let r = self.exact(&stem(alias(&w[k..])))?;
                Some((l, r))
            })
    }

    fn terms(&self, words: &[String], unmatched: &mut Vec<String>) -> Vec<Term> {
        let n = words.len();
        let mut terms = Vec::new();
        let mut i = 0;
        'outer: while i < n {
            for len in [3, 2] {
                if i + len <= n {
                    let joined = stem(&words[i..i + len].concat());
                    if let Some(id) = self.exact(&joined) {
                        terms.push(vec![(id, 1.0)]);
                        i += len;
                        continue 'outer;
                    }
                }
            }
            let s = stem(&words[i]);
            if let Some(id) = self.exact(&s) {
                terms.push(vec![(id, 1.0)]);
                i += 1;
                continue;
            }
            if let Some((l, r)) = self.split(&words[i]) {
                terms.push(vec![(l, 0.9)]);
                terms.push(vec![(r, 0.9)]);
                i += 1;
                continue;
            }
            if i + 1 < n && self.exact(&stem(&words[i + 1])).is_none() {
                let f = self.fuzzy(&stem(&words[i..i + 2].concat()));
                if !f.is_empty() {
                    terms.push(f);
                    i += 2;
                    continue;
                }
            }
            let mut f = self.fuzzy(&s);
            if f.is_empty() {
                f = self.partial(&s);
            }
            if f.is_empty() {
                unmatched.push(words[i].clone());
            } else {
                terms.push(f);
            }
            i += 1;
        }
        terms
    }

    /// Ranked search. An exact article number in the query wins outright.
    pub fn search(
        &self,
        products: &[Product],
        by_article: &HashMap<String, usize>,
        query: &str,
        limit: usize,
    ) -> SearchResult {
        let limit = limit.clamp(1, 50);
        for tok in query.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
            let tok = tok.trim_matches(|c: char| !c.is_alphanumeric());
            if let Some(&i) = by_article.get(tok) {
                return SearchResult {
                    hits: vec![Hit {
                        index: i,
                        score: 100.0,
                        sizes_match: true,
                    }],
                    group_len: 1,
                    ..Default::default()
                };
            }
        }

        let a = normalize::analyze(query);
        let mut understood = Understood {
            sizes: a.dims.iter().map(|d| d.to_string()).collect(),
            quantity: a.quantity,
            unmatched: Vec::new(),
        };
        let words: Vec<String> = a.words.iter().map(|w| alias(&w.text).to_string()).collect();
        let terms = self.terms(&words, &mut understood.unmatched);

        let n = products.len();
        let mut score = vec![0f32; n];
        let mut best = vec![0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut cands: Vec<u32> = Vec::new();
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
        for term in &terms {
            let mut it = term.iter().map(|&(id, w)| {
                (
                    self.postings[id as usize].as_slice(),
                    w * self.idf[id as usize],
                )
            });
            add_term(&mut it, &mut score, None);
        }
        let empty: Vec<u32> = Vec::new();
        let mut dim_hits = vec![0u8; if a.dims.is_empty() { 0 } else { n }];
        for d in &a.dims {
            let mut alts: Vec<(&[u32], f32)> = vec![(
                self.dims.get(&d.key()).unwrap_or(&empty).as_slice(),
                DIM_WEIGHT,
            )];
            for e in equivalents(*d) {
                alts.push((
                    self.dims.get(&e.key()).unwrap_or(&empty).as_slice(),
                    DIM_EQUIV_WEIGHT,
                ));
            }
            add_term(&mut alts.into_iter(), &mut score, Some(&mut dim_hits[..]));
        }
        if !a.soft_dims.is_empty() {
            let mut alts = a.soft_dims.iter().map(|d| {
                (
                    self.dims.get(&d.key()).unwrap_or(&empty).as_slice(),
                    SOFT_DIM_WEIGHT,
                )
            });
            add_term(&mut alts, &mut score, None);
        }

        let mut ranked: Vec<(u32, f32)> = cands
            .iter()
            .map(|&p| {
                (
                    p,
                    score[p as usize] - LENGTH_PENALTY * f32::from(self.word_count[p as usize]),
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
}
