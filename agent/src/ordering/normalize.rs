//! Text normalisation shared by the catalog index and the query parser.
//!
//! Queries arrive from speech-to-text, so the same article is written many ways: "T-Stück",
//! "T Stück", "T-Stueck", "dreiviertel Zoll", "¾\"", "22er", "zweiundzwanziger", "DN 20". Both the
//! catalog text and the query run through the *same* pipeline here, so whatever the pipeline does,
//! the two sides agree:
//!
//! 1. [`fold`]: Unicode NFC, lower case, ä→ae ö→oe ü→ue ß→ss, other accents dropped, vulgar
//!    fractions and typographic quotes mapped to ASCII.
//! 2. [`analyze`]: tokens; German number words (incl. "dreiviertel", "eineinviertel",
//!    "fünf Viertel", "halbzoll"); numbers bound to the unit that follows ("mm", "Zoll", "er",
//!    "°", "Meter" …) or precedes ("DN", "PN") them. Sizes become [`Dim`]s, "zehn Meter" becomes a
//!    quantity, and the remaining words are stemmed with a light German suffix stripper.
//!
//! Sizes are kept as typed values, not text, because "3/4 Zoll", "¾\"" and "dreiviertel" must be
//! equal, and DN 20 must still be close to 3/4".

use unicode_normalization::UnicodeNormalization;

use super::vocabulary::{Dim, Unit};

/// Inch sizes (in eighths) that exist for pipe threads; used to decide whether "2 3/4" is one
/// size or a quantity followed by a size.
/// Longer words are never number words; bounds the work on hostile input.
const MAX_NUMBER_WORD: usize = 40;

const STANDARD_EIGHTHS: [u32; 15] = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64];

/// Case-, accent- and umlaut-folding: "T-Stück ¾“" → "t-stueck  3/4\"".
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.nfc().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            '½' => out.push_str(" 1/2"),
            '¼' => out.push_str(" 1/4"),
            '¾' => out.push_str(" 3/4"),
            '⅛' => out.push_str(" 1/8"),
            '⅜' => out.push_str(" 3/8"),
            '⅝' => out.push_str(" 5/8"),
            '⁄' | '∕' => out.push('/'),
            '″' | '“' | '”' | '„' => out.push('"'),
            '’' | '‘' | '′' | '´' | '`' => out.push('\''),
            '–' | '—' | '‐' | '‑' => out.push('-'),
            '×' => out.push_str(" x "),
            c if c.is_ascii() => out.push(c),
            c => {
                // Other accents: decompose and keep the base letters only (é → e).
                for d in std::iter::once(c).nfkd() {
                    if !('\u{300}'..='\u{36f}').contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
    }
    out.replace("''", "\"")
}

/// Light German stemmer: strips plural/inflection endings so "Muffen" = "Muffe",
/// "T-Stücke" = "T-Stück". Applied identically to catalog and query words.
pub fn stem(word: &str) -> String {
    stem_str(word).to_string()
}

/// [`stem`] without allocating: the stem is always a prefix of the word.
pub fn stem_str(word: &str) -> &str {
    let mut w = word;
    for _ in 0..2 {
        if w.len() <= 4 {
            break;
        }
        let cut = ["en", "er", "es", "e", "n", "s"]
            .iter()
            .find(|suf| w.ends_with(*suf))
            .map(|suf| suf.len());
        match cut {
            Some(n) => w = &w[..w.len() - n],
            None => break,
        }
    }
    w
}

/// A word of the query or of a catalog text after folding; hyphenated words are joined
/// ("t-stueck" → "tstueck") and keep their parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub parts: Vec<String>,
}

/// What [`analyze`] understood of a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Content words (folded, not yet stemmed), in order.
    pub words: Vec<Word>,
    /// Sizes with an explicit unit or an unambiguous form ("3/4", "22er", "DN 20").
    pub dims: Vec<Dim>,
    /// Bare numbers that may be sizes ("T-Stück 22"): scored lightly, never required.
    pub soft_dims: Vec<Dim>,
    /// A quantity with an explicit unit ("zehn Meter", "2 Stück").
    pub quantity: Option<(f64, Unit)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Word(Word),
    Num(f64),
    Slash,
    InchMark,
    Degree,
}

fn tokenize(folded: &str) -> Vec<Raw> {
    let b: Vec<char> = folded.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphabetic() {
            let mut parts = Vec::new();
            loop {
                let start = i;
                while i < b.len() && b[i].is_alphabetic() {
                    i += 1;
                }
                parts.push(b[start..i].iter().collect::<String>());
                // A hyphen between letters joins: "t-stueck", "pe-x".
                if i + 1 < b.len() && b[i] == '-' && b[i + 1].is_alphabetic() {
                    i += 1;
                    continue;
                }
                break;
            }
            let text = parts.concat();
            out.push(Raw::Word(Word { text, parts }));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && (b[i] == ',' || b[i] == '.') && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let s: String = b[start..i]
                .iter()
                .map(|&c| if c == ',' { '.' } else { c })
                .collect();
            if let Ok(v) = s.parse::<f64>() {
                out.push(Raw::Num(v));
            }
        } else {
            match c {
                '/' => out.push(Raw::Slash),
                '"' => out.push(Raw::InchMark),
                '°' => out.push(Raw::Degree),
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// A number as spoken, before combination ("ein" "einviertel" → 1 1/4).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    /// A whole number; `article` for "ein/eine/einen", which is usually an article.
    Whole { v: f64, article: bool },
    /// A fraction below one; `bare` for "halb"/"viertel"/"achtel" that multiply the number
    /// before them ("drei viertel", "fünf viertel").
    Frac { v: f64, bare: bool },
    /// A mixed number spoken as one word ("eineinhalb", "fünfviertel").
    Mixed(f64),
}

impl Piece {
    fn value(self) -> f64 {
        match self {
            Piece::Whole { v, .. } | Piece::Frac { v, .. } | Piece::Mixed(v) => v,
        }
    }
}

fn int_word(w: &str) -> Option<(u32, bool)> {
    let v = match w {
        "ein" | "eine" | "einen" | "einem" | "einer" => return Some((1, true)),
        "eins" => 1,
        "zwei" | "zwo" => 2,
        "drei" => 3,
        "vier" => 4,
        "fuenf" => 5,
        "sechs" => 6,
        "sieben" => 7,
        "acht" => 8,
        "neun" => 9,
        "zehn" => 10,
        "elf" => 11,
        "zwoelf" => 12,
        "dreizehn" => 13,
        "vierzehn" => 14,
        "fuenfzehn" => 15,
        "sechzehn" => 16,
        "siebzehn" => 17,
        "achtzehn" => 18,
        "neunzehn" => 19,
        "zwanzig" => 20,
        "dreissig" => 30,
        "vierzig" => 40,
        "fuenfzig" => 50,
        "sechzig" => 60,
        "siebzig" => 70,
        "achtzig" => 80,
        "neunzig" => 90,
        "hundert" | "einhundert" => 100,
        _ => {
            let (unit, tens) = w.split_once("und")?;
            let u = match unit {
                "ein" => 1,
                u => match int_word(u)? {
                    (n, false) if n < 10 => n,
                    _ => return None,
                },
            };
            match int_word(tens)? {
                (t, false) if (20..100).contains(&t) && t % 10 == 0 => u + t,
                _ => return None,
            }
        }
    };
    Some((v, false))
}

fn frac_word(w: &str) -> Option<Piece> {
    match w {
        "halb" => return Some(Piece::Frac { v: 0.5, bare: true }),
        // Adjective forms ("ein halber Zoll") do not multiply the number before them.
        "halbe" | "halber" | "halben" | "halbes" => {
            return Some(Piece::Frac {
                v: 0.5,
                bare: false,
            })
        }
        "viertel" => {
            return Some(Piece::Frac {
                v: 0.25,
                bare: true,
            })
        }
        "achtel" => {
            return Some(Piece::Frac {
                v: 0.125,
                bare: true,
            })
        }
        "einhalb" => {
            return Some(Piece::Frac {
                v: 0.5,
                bare: false,
            })
        }
        "anderthalb" => return Some(Piece::Mixed(1.5)),
        _ => {}
    }
    for (suf, den) in [("viertel", 4.0), ("achtel", 8.0)] {
        if let Some(num) = w.strip_suffix(suf) {
            let n = f64::from(int_word(num)?.0);
            let v = n / den;
            return Some(if v < 1.0 {
                Piece::Frac { v, bare: false }
            } else {
                Piece::Mixed(v)
            });
        }
    }
    None
}

/// Parses one folded word as a spoken number: "zweiundzwanzig", "dreiviertel", "eineinhalb".
fn number_word(w: &str) -> Option<Piece> {
    if let Some((v, article)) = int_word(w) {
        return Some(Piece::Whole {
            v: f64::from(v),
            article,
        });
    }
    if let Some(p) = frac_word(w) {
        return Some(p);
    }
    // Mixed: <whole>[und]<fraction below one>: "eineinhalb", "einundeinviertel", "zweieinhalb".
    for (k, _) in w.char_indices().skip(2) {
        let (head, tail) = w.split_at(k);
        let whole = match head {
            "ein" => 1,
            h => match int_word(h) {
                Some((n, false)) => n,
                _ => continue,
            },
        };
        let tail = tail.strip_prefix("und").unwrap_or(tail);
        if let Some(Piece::Frac { v, .. }) = frac_word(tail) {
            return Some(Piece::Mixed(f64::from(whole) + v));
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum UnitWord {
    Mm,
    Cm,
    Inch,
    Degree,
    Qty(Unit),
}

fn unit_word(w: &str) -> Option<UnitWord> {
    Some(match w {
        "mm" | "millimeter" | "millimetern" | "milimeter" | "er" | "ern" => UnitWord::Mm,
        "cm" | "zentimeter" => UnitWord::Cm,
        "zoll" | "zoellig" | "zoeller" | "inch" | "z" => UnitWord::Inch,
        "grad" => UnitWord::Degree,
        "m" | "meter" | "metern" | "mtr" | "lfm" => UnitWord::Qty(Unit::Meter),
        "stueck" | "stk" | "stck" | "st" | "teile" => UnitWord::Qty(Unit::Stueck),
        "packung" | "packungen" | "pack" | "packs" | "paket" | "pakete" | "pkg" | "pck" => {
            UnitWord::Qty(Unit::Packung)
        }
        "rolle" | "rollen" | "ring" | "ringe" => UnitWord::Qty(Unit::Rolle),
        "dose" | "dosen" => UnitWord::Qty(Unit::Dose),
        "tube" | "tuben" => UnitWord::Qty(Unit::Tube),
        _ => return None,
    })
}

/// Words that carry no product meaning in a spoken order.
const STOPWORDS: &[&str] = &[
    "ich",
    "wir",
    "mir",
    "uns",
    "brauche",
    "brauchen",
    "braeuchte",
    "haette",
    "haetten",
    "gern",
    "gerne",
    "bitte",
    "noch",
    "dann",
    "und",
    "oder",
    "mit",
    "in",
    "aus",
    "von",
    "fuer",
    "der",
    "die",
    "das",
    "den",
    "dem",
    "des",
    "mal",
    "also",
    "so",
    "ja",
    "hallo",
    "moechte",
    "moechten",
    "will",
    "wollen",
    "bestellen",
    "nehme",
    "nehmen",
    "dazu",
    "davon",
    "auf",
    "x",
    "mm",
    "zoll",
    "grad",
    "dn",
    "pn",
    "nw",
    "hier",
    "sowie",
    "je",
    "a",
    "ca",
    "circa",
    "etwa",
    "ne",
    "nen",
    "einmal",
    "mehr",
    "er",
    "es",
    "sie",
    "wie",
    "gleich",
];

fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

#[derive(Debug, Clone, PartialEq)]
enum Lex {
    Word(Word),
    Value(Piece),
    Unit(UnitWord),
    /// "DN", "NW" or "PN" in front of a number.
    Prefix(bool),
    /// "x" / "auf" between two sizes: "22 x 15", "dreiviertel auf halb".
    Join,
    /// "mal": a dimension join between sizes ("16 mal 2"), but also "zwei mal" (twice).
    Mal,
    /// "komma" between two spoken numbers: "drei komma fünf".
    Comma,
}

fn lex(raw: Vec<Raw>) -> Vec<Lex> {
    let mut out: Vec<Lex> = Vec::with_capacity(raw.len());
    let mut it = raw.into_iter().peekable();
    while let Some(t) = it.next() {
        match t {
            Raw::Num(a) => {
                if it.peek() == Some(&Raw::Slash) {
                    it.next();
                    if let Some(Raw::Num(b)) = it.peek().cloned() {
                        it.next();
                        if b > 0.0 {
                            let v = a / b;
                            out.push(Lex::Value(if v < 1.0 {
                                Piece::Frac { v, bare: false }
                            } else {
                                Piece::Mixed(v)
                            }));
                        }
                        continue;
                    }
                }
                out.push(Lex::Value(Piece::Whole {
                    v: a,
                    article: false,
                }));
            }
            Raw::Slash => {}
            Raw::InchMark => out.push(Lex::Unit(UnitWord::Inch)),
            Raw::Degree => out.push(Lex::Unit(UnitWord::Degree)),
            Raw::Word(w) => lex_word(w, &mut out),
        }
    }
    out
}

fn lex_word(w: Word, out: &mut Vec<Lex>) {
    let t = w.text.as_str();
    if matches!(t, "dn" | "nw") {
        return out.push(Lex::Prefix(true));
    }
    if t == "pn" {
        return out.push(Lex::Prefix(false));
    }
    if matches!(t, "x" | "auf") {
        return out.push(Lex::Join);
    }
    if t == "mal" && matches!(out.last(), Some(Lex::Value(_))) {
        return out.push(Lex::Mal);
    }
    if t == "komma" && matches!(out.last(), Some(Lex::Value(Piece::Whole { .. }))) {
        return out.push(Lex::Comma);
    }
    if t.len() > MAX_NUMBER_WORD {
        return out.push(Lex::Word(w));
    }
    let after_value = matches!(out.last(), Some(Lex::Value(_)));
    if after_value {
        // A unit right after a number ("45-grad-bogen" starts with one).
        if let Some(u) = unit_word(t) {
            return out.push(Lex::Unit(u));
        }
        if w.parts.len() > 1 {
            if let Some(u) = unit_word(&w.parts[0]) {
                out.push(Lex::Unit(u));
                let rest = Word {
                    text: w.parts[1..].concat(),
                    parts: w.parts[1..].to_vec(),
                };
                return lex_word(rest, out);
            }
        }
    }
    if let Some(p) = number_word(t) {
        return out.push(Lex::Value(p));
    }
    // Number word with a glued unit: "halbzoll", "zweiundzwanziger", "fuenfzehnmillimeter".
    for suf in ["zoellig", "zoeller", "zoll", "millimeter", "mm", "er"] {
        if let Some(head) = t.strip_suffix(suf) {
            if let Some(p) = number_word(head) {
                if matches!(p, Piece::Whole { article: true, .. }) && suf == "er" {
                    continue; // "einer" is an article, not "1er"
                }
                // "zwei halbzoll Muffen": a glued fraction does not multiply the "zwei".
                let p = match p {
                    Piece::Frac { v, .. } => Piece::Frac { v, bare: false },
                    p => p,
                };
                out.push(Lex::Value(p));
                out.push(Lex::Unit(unit_word(suf).unwrap_or(UnitWord::Mm)));
                return;
            }
        }
    }
    out.push(Lex::Word(w));
}

fn is_standard_inch(v: f64) -> bool {
    let e = v * 8.0;
    (e - e.round()).abs() < 1e-6 && STANDARD_EIGHTHS.contains(&(e.round() as u32))
}

/// Merges spoken number pieces: "1 1/4" → 1.25, "drei viertel" → 0.75, "ein einviertel" → 1.25,
/// "fünf viertel" → 1.25, but "zwei dreiviertel" stays 2 and 3/4 (no 2 3/4" thread exists).
fn combine(lexes: Vec<Lex>) -> Vec<Lex> {
    let mut out: Vec<Lex> = Vec::with_capacity(lexes.len());
    for l in lexes {
        // "drei komma fünf" → 3.5
        if let Lex::Value(Piece::Whole { v: b, .. }) = l {
            let n = out.len();
            if n >= 2 && out[n - 1] == Lex::Comma && b.fract() == 0.0 && b < 1000.0 {
                if let Lex::Value(Piece::Whole { v: a, .. }) = out[n - 2] {
                    let digits = if b < 10.0 {
                        1
                    } else {
                        (b.log10().floor() as i32) + 1
                    };
                    let v = a + b / 10f64.powi(digits);
                    out.truncate(n - 2);
                    out.push(Lex::Value(Piece::Whole { v, article: false }));
                    continue;
                }
            }
        }
        if let Lex::Value(p) = l {
            let prev = match out.last() {
                Some(Lex::Value(q)) => Some(*q),
                _ => None,
            };
            let prev2 = match out.len().checked_sub(2).map(|i| &out[i]) {
                Some(Lex::Value(q)) => Some(*q),
                _ => None,
            };
            let merged = match (prev2, prev, p) {
                // "ein ein viertel", "eins ein halb": a + 1 * f
                (
                    Some(Piece::Whole { v: a, .. }),
                    Some(Piece::Whole { v: 1.0, .. }),
                    Piece::Frac { v: f, bare: true },
                ) if is_standard_inch(a + f) => {
                    out.pop();
                    Some(a + f)
                }
                (_, Some(Piece::Whole { v: a, .. }), Piece::Frac { v: f, bare: true })
                    if is_standard_inch(a * f) =>
                {
                    Some(a * f)
                }
                (
                    _,
                    Some(Piece::Whole {
                        v: a,
                        article: false,
                    }),
                    Piece::Frac { v: f, bare: false },
                ) if a >= 1.0 && is_standard_inch(a + f) => Some(a + f),
                _ => None,
            };
            if let Some(v) = merged {
                out.pop();
                out.push(Lex::Value(if v < 1.0 {
                    Piece::Frac { v, bare: false }
                } else {
                    Piece::Mixed(v)
                }));
                continue;
            }
        }
        out.push(l);
    }
    out
}

/// Folds, tokenises and interprets a query or catalog text. See the module docs.
pub fn analyze(text: &str) -> Analysis {
    analyze_folded(&fold(text))
}

/// [`analyze`] for text that already went through [`fold`].
pub fn analyze_folded(folded: &str) -> Analysis {
    let lexes = combine(lex(tokenize(folded)));
    let mut a = Analysis::default();
    let mut i = 0;
    while i < lexes.len() {
        match &lexes[i] {
            Lex::Word(w) => {
                if !is_stopword(&w.text) {
                    a.words.push(w.clone());
                }
                i += 1;
            }
            Lex::Prefix(dn) => {
                if let Some(Lex::Value(p)) = lexes.get(i + 1) {
                    let v = p.value();
                    if v >= 1.0 && v.fract() == 0.0 {
                        a.dims.push(if *dn {
                            Dim::Dn(v as u32)
                        } else {
                            Dim::Pn(v as u32)
                        });
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            Lex::Value(_) => {
                // A chain "v [unit] (x v [unit])*": "22 x 15 mm", "22 mm x 3/4 Zoll".
                let mut pending: Vec<Piece> = Vec::new();
                let mut joined = false;
                let mut j = i;
                while let Some(Lex::Value(p)) = lexes.get(j) {
                    pending.push(*p);
                    j += 1;
                    if let Some(Lex::Unit(u)) = lexes.get(j) {
                        match u {
                            // "26 x 3 Rolle": the pair is the size, the unit names the product
                            // ("Rolle 50 m"), not a quantity of 26.
                            UnitWord::Qty(q) if joined && is_metric_pair(&pending) => {
                                assign(&mut a, &pending, Some(UnitWord::Mm));
                                let text = fold(q.as_str());
                                a.words.push(Word {
                                    parts: vec![text.clone()],
                                    text,
                                });
                            }
                            u => assign(&mut a, &pending, Some(*u)),
                        }
                        pending.clear();
                        j += 1;
                    }
                    // "mal" joins only after a plausible dimension: "16 mal 2", not "zwei mal".
                    let join = match lexes.get(j) {
                        Some(Lex::Join) => true,
                        Some(Lex::Mal) => p.value() >= 6.0,
                        _ => false,
                    };
                    if join && matches!(lexes.get(j + 1), Some(Lex::Value(_))) {
                        joined = true;
                        j += 1;
                        continue;
                    }
                    break;
                }
                if joined && is_metric_pair(&pending) {
                    assign(&mut a, &pending, Some(UnitWord::Mm));
                } else {
                    assign(&mut a, &pending, None);
                }
                i = j;
            }
            Lex::Unit(_) | Lex::Join | Lex::Mal | Lex::Comma => i += 1,
        }
    }
    a
}

/// Dimensions joined by "x"/"mal" without a unit are millimetres ("40 x 3,5", "16 mal 2") when
/// they are plain numbers and the first is a plausible outer diameter; fractions stay inches.
fn is_metric_pair(chain: &[Piece]) -> bool {
    chain.len() >= 2
        && chain
            .iter()
            .all(|p| matches!(p, Piece::Whole { article: false, v } if *v > 0.0 && *v <= 1000.0))
        && chain[0].value() >= 6.0
}

fn assign(a: &mut Analysis, chain: &[Piece], unit: Option<UnitWord>) {
    for &p in chain {
        let v = p.value();
        // "28 auf 1 Zoll": a chain that ends in inches may start with a millimetre size.
        let unit = match unit {
            Some(UnitWord::Inch) if chain.len() > 1 && !is_standard_inch(v) && v >= 6.0 => {
                Some(UnitWord::Mm)
            }
            u => u,
        };
        let dim = match unit {
            Some(UnitWord::Mm) => Dim::mm_from_value(v),
            Some(UnitWord::Cm) => Dim::mm_from_value(v * 10.0),
            Some(UnitWord::Inch) => Dim::inch_from_value(v),
            Some(UnitWord::Degree) => (v.fract() == 0.0 && v > 0.0).then_some(Dim::Angle(v as u32)),
            Some(UnitWord::Qty(u)) => {
                if a.quantity.is_none() && v > 0.0 {
                    a.quantity = Some((v, u));
                }
                None
            }
            None => {
                match p {
                    // A fraction without unit is a thread size: "T-Stück 3/4", "dreiviertel".
                    Piece::Frac { .. } | Piece::Mixed(_) if is_standard_inch(v) => {
                        Dim::inch_from_value(v)
                    }
                    Piece::Whole { article: true, .. } => None,
                    Piece::Whole { v, .. } => {
                        if v.fract() == 0.0 && (1.0..=2.0).contains(&v) {
                            a.soft_dims.extend(Dim::inch_from_value(v));
                        }
                        if (6.0..=110.0).contains(&v) {
                            a.soft_dims.extend(Dim::mm_from_value(v));
                            if v.fract() == 0.0 {
                                a.soft_dims.push(Dim::Dn(v as u32));
                            }
                        }
                        None
                    }
                    _ => None,
                }
            }
        };
        a.dims.extend(dim);
    }
}

/// Parses a catalog `size` field: dimensions joined by " x " ("22 mm x 3/4 Zoll", "DN 20").
/// Every dimension needs a unit (mm, Zoll or "), or the DN prefix.
pub fn parse_size(field: &str) -> Result<Vec<Dim>, String> {
    let mut dims = Vec::new();
    for part in fold(field).split(" x ") {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty dimension".into());
        }
        let a = analyze(part);
        if a.dims.len() != 1 || !a.soft_dims.is_empty() || !a.words.is_empty() {
            return Err(format!("cannot read `{part}`"));
        }
        dims.push(a.dims[0]);
    }
    Ok(dims)
}

/// Parses a rating field like "PN 16" (empty allowed by the caller).
pub fn parse_prefixed(field: &str, prefix: &str) -> Option<u32> {
    let f = fold(field);
    let rest = f.trim().strip_prefix(prefix)?.trim();
    rest.parse().ok().filter(|v| *v > 0)
}

/// Parses an angle field like "90°" or "45 Grad".
pub fn parse_angle(field: &str) -> Option<u32> {
    let a = analyze(field);
    match (a.dims.as_slice(), a.words.is_empty()) {
        ([Dim::Angle(v)], true) => Some(*v),
        _ => None,
    }
}

/// Numbers said one after another, as callers read an article number from a price list:
/// "sechs null null null eins acht", "300 012", "4-0-0-0-0-2", "vierhunderttausenddreißig".
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRun {
    /// The digits each token said, in order ("300", "012"; "6", "0", "0" …).
    pub pieces: Vec<String>,
    /// Byte range of each piece in the folded text.
    pub spans: Vec<(usize, usize)>,
    /// Whether each piece was written with digits (not spoken as a word).
    pub written: Vec<bool>,
    /// An article cue ("Artikel", "Nummer", "Art.-Nr.") stands shortly before the run.
    pub cue: bool,
}

/// Most pieces kept per run and most runs per text: bounds the work on hostile input.
const MAX_RUN_PIECES: usize = 32;
const MAX_RUNS: usize = 16;

/// Words that announce an article number.
fn is_article_cue(w: &str) -> bool {
    matches!(
        w,
        "artikel"
            | "artikelnummer"
            | "artikelnr"
            | "art"
            | "artnr"
            | "nummer"
            | "nr"
            | "bestellnummer"
            | "bestellnr"
            | "katalognummer"
            | "artikelnumer"
    )
}

/// A spoken whole number up to 999 999 as digits: "null" → "0", "zwoelf" → "12",
/// "dreihundertzwoelf" → "312", "vierhunderttausenddreissig" → "400030". "ein"/"eine" are
/// articles, not digits.
fn spoken_digits(w: &str) -> Option<String> {
    fn below_hundred(w: &str) -> Option<u32> {
        match int_word(w)? {
            (n, false) if n < 100 => Some(n),
            _ => None,
        }
    }
    fn below_thousand(w: &str) -> Option<u32> {
        match w.split_once("hundert") {
            Some((h, rest)) => {
                let h = match h {
                    "" | "ein" => 1,
                    h => below_hundred(h).filter(|n| *n < 10)?,
                };
                let rest = rest.strip_prefix("und").unwrap_or(rest);
                let r = if rest.is_empty() {
                    0
                } else {
                    below_hundred(rest)?
                };
                Some(h * 100 + r)
            }
            None => below_hundred(w),
        }
    }
    if w.len() > MAX_NUMBER_WORD {
        return None;
    }
    if w == "null" {
        return Some("0".into());
    }
    let v = match w.split_once("tausend") {
        Some((t, rest)) => {
            let t = match t {
                "" | "ein" => 1,
                t => below_thousand(t)?,
            };
            let rest = rest.strip_prefix("und").unwrap_or(rest);
            let r = if rest.is_empty() {
                0
            } else {
                below_thousand(rest)?
            };
            t * 1000 + r
        }
        None => below_thousand(w)?,
    };
    Some(v.to_string())
}

/// Finds runs of numbers that may form an article number. A number bound to a unit ("15 mm",
/// "zwei Zoll", "10 Stück"), to DN/PN/M, or joined by "x"/"mal"/"auf"/"/" is a size or a
/// quantity and ends a run; "Strich", "-", "." and spaces separate pieces of one run.
pub fn number_runs(folded: &str) -> Vec<NumberRun> {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok<'a> {
        Word(&'a str, usize, usize),
        Digits(&'a str, usize, usize),
        /// Something that can never be inside an article number ('/', '"', a decimal).
        Stop,
    }
    let mut toks: Vec<Tok> = Vec::new();
    let b = folded.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() {
            let st = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            toks.push(Tok::Word(&folded[st..i], st, i));
        } else if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b',' && b[i + 1].is_ascii_digit() {
                // "3,5": a decimal, i.e. a size.
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b',') {
                    i += 1;
                }
                toks.push(Tok::Stop);
            } else {
                toks.push(Tok::Digits(&folded[st..i], st, i));
            }
        } else {
            if matches!(c, b'/' | b'"' | b'%')
                || !c.is_ascii() && !folded[i..].starts_with(char::is_whitespace)
            {
                toks.push(Tok::Stop);
            }
            i += 1;
            while i < b.len() && !folded.is_char_boundary(i) {
                i += 1;
            }
        }
    }
    fn word<'a>(t: Option<&Tok<'a>>) -> Option<&'a str> {
        match t {
            Some(Tok::Word(w, ..)) => Some(*w),
            _ => None,
        }
    }
    let binds = |w: Option<&str>| {
        w.is_some_and(|w| {
            unit_word(w).is_some() || matches!(w, "x" | "mal" | "auf" | "bis" | "komma" | "prozent")
        })
    };
    let mut runs: Vec<NumberRun> = Vec::new();
    let mut cur: Option<NumberRun> = None;
    // Words since the last cue (the cue survives a few: "Artikel, die Nummer ist …").
    let mut since_cue = usize::MAX;
    for (k, t) in toks.iter().enumerate() {
        let prev = if k > 0 { word(toks.get(k - 1)) } else { None };
        let next = word(toks.get(k + 1));
        let piece = match *t {
            Tok::Digits(d, st, en) => Some((d.to_string(), st, en, true)),
            Tok::Word(w, st, en) => spoken_digits(w).map(|d| (d, st, en, false)),
            Tok::Stop => None,
        };
        let bound = binds(next)
            || binds(prev)
            || prev.is_some_and(|p| matches!(p, "dn" | "nw" | "pn" | "m"));
        match piece {
            Some((d, st, en, written)) if !bound => {
                let r = cur.get_or_insert_with(|| NumberRun {
                    pieces: Vec::new(),
                    spans: Vec::new(),
                    written: Vec::new(),
                    cue: since_cue <= 3,
                });
                if r.pieces.len() < MAX_RUN_PIECES {
                    r.pieces.push(d);
                    r.spans.push((st, en));
                    r.written.push(written);
                }
            }
            _ => {
                if let Tok::Word(w, ..) = *t {
                    if matches!(w, "strich" | "bindestrich" | "minus") && cur.is_some() {
                        continue;
                    }
                    if is_article_cue(w) {
                        since_cue = 0;
                    } else {
                        since_cue = since_cue.saturating_add(1);
                    }
                }
                if let Some(r) = cur.take() {
                    if runs.len() < MAX_RUNS {
                        runs.push(r);
                    }
                }
            }
        }
    }
    if let Some(r) = cur.take() {
        if runs.len() < MAX_RUNS {
            runs.push(r);
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(q: &str) -> Vec<Dim> {
        analyze(q).dims
    }

    fn words(q: &str) -> Vec<String> {
        analyze(q).words.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn folds_umlauts_case_and_hyphens() {
        assert_eq!(fold("T-Stück Rotguß ÄÖÜ"), "t-stueck rotguss aeoeue");
        assert_eq!(fold("Cafe\u{301}"), "cafe");
        assert_eq!(words("T-Stück"), vec!["tstueck"]);
        assert_eq!(words("T-Stueck"), vec!["tstueck"]);
        assert_eq!(words("TStück"), vec!["tstueck"]);
        assert_eq!(words("T Stück"), vec!["t", "stueck"]);
        assert_eq!(stem("muffen"), stem("muffe"));
        assert_eq!(stem("tstuecke"), stem("tstueck"));
    }

    #[test]
    fn inch_forms_agree() {
        let three_quarter = vec![Dim::Inch(6)];
        for q in [
            "3/4 Zoll",
            "3/4\"",
            "¾\"",
            "¾",
            "dreiviertel Zoll",
            "dreiviertel",
            "dreiviertelzoll",
            "drei viertel zoll",
            "3/4",
        ] {
            assert_eq!(dims(q), three_quarter, "{q}");
        }
        for q in [
            "halbzoll",
            "halber Zoll",
            "1/2 Zoll",
            "ein halb zoll",
            "½\"",
        ] {
            assert_eq!(dims(q), vec![Dim::Inch(4)], "{q}");
        }
        for q in [
            "1 1/4 Zoll",
            "eineinviertel Zoll",
            "ein ein viertel zoll",
            "fünf viertel",
            "5/4\"",
        ] {
            assert_eq!(dims(q), vec![Dim::Inch(10)], "{q}");
        }
        assert_eq!(dims("ein Zoll"), vec![Dim::Inch(8)]);
        assert_eq!(dims("einzoll"), vec![Dim::Inch(8)]);
        assert_eq!(dims("anderthalb Zoll"), vec![Dim::Inch(12)]);
    }

    #[test]
    fn metric_dn_and_angles() {
        for q in [
            "22 mm",
            "22mm",
            "22er",
            "zweiundzwanzig Millimeter",
            "zweiundzwanziger",
        ] {
            assert_eq!(dims(q), vec![Dim::Mm(220)], "{q}");
        }
        assert_eq!(dims("fünfzehn Millimeter"), vec![Dim::Mm(150)]);
        assert_eq!(dims("DN 20"), vec![Dim::Dn(20)]);
        assert_eq!(dims("dn20"), vec![Dim::Dn(20)]);
        assert_eq!(dims("PN 16"), vec![Dim::Pn(16)]);
        assert_eq!(dims("Winkel 90°"), vec![Dim::Angle(90)]);
        assert_eq!(dims("45-Grad-Bogen"), vec![Dim::Angle(45)]);
        assert_eq!(words("45-Grad-Bogen"), vec!["bogen"]);
        assert_eq!(dims("22 x 15 mm"), vec![Dim::Mm(220), Dim::Mm(150)]);
        assert_eq!(dims("22 mm x 3/4 Zoll"), vec![Dim::Mm(220), Dim::Inch(6)]);
    }

    #[test]
    fn quantities_are_not_sizes() {
        let a = analyze("zehn Meter Kupferrohr fünfzehn Millimeter");
        assert_eq!(a.quantity, Some((10.0, Unit::Meter)));
        assert_eq!(a.dims, vec![Dim::Mm(150)]);
        assert_eq!(a.words.len(), 1);
        let a = analyze("zwei dreiviertel Zoll T-Stücke");
        assert_eq!(a.dims, vec![Dim::Inch(6)]);
        let a = analyze("eine Muffe");
        assert!(a.soft_dims.is_empty() && a.dims.is_empty());
    }

    #[test]
    fn size_fields() {
        assert_eq!(parse_size("1 1/4 Zoll").unwrap(), vec![Dim::Inch(10)]);
        assert_eq!(
            parse_size("16 mm x 2 mm").unwrap(),
            vec![Dim::Mm(160), Dim::Mm(20)]
        );
        assert_eq!(
            parse_size("40 mm x 3.5 mm").unwrap(),
            vec![Dim::Mm(400), Dim::Mm(35)]
        );
        assert!(parse_size("15").is_err());
        assert!(parse_size("gross").is_err());
        assert_eq!(Dim::Inch(10).to_string(), "1 1/4\"");
        assert_eq!(Dim::Inch(4).to_string(), "1/2\"");
        assert_eq!(parse_prefixed("PN 16", "pn"), Some(16));
        assert_eq!(parse_angle("90°"), Some(90));
    }
    #[test]
    fn decimal_commas_and_dimension_pairs() {
        assert_eq!(dims("40 x 3,5"), vec![Dim::Mm(400), Dim::Mm(35)]);
        assert_eq!(dims("40 x 3.5 mm"), vec![Dim::Mm(400), Dim::Mm(35)]);
        assert_eq!(dims("16 mal 2"), vec![Dim::Mm(160), Dim::Mm(20)]);
        assert_eq!(dims("16x2"), vec![Dim::Mm(160), Dim::Mm(20)]);
        assert_eq!(
            dims("vierzig mal drei komma fünf"),
            vec![Dim::Mm(400), Dim::Mm(35)]
        );
        assert_eq!(dims("1,5 Millimeter"), vec![Dim::Mm(15)]);
        assert_eq!(dims("eins komma fünf mm"), vec![Dim::Mm(15)]);
        assert_eq!(dims("22 auf 15"), vec![Dim::Mm(220), Dim::Mm(150)]);
        let a = analyze("Verbundrohr 26 x 3 Rolle");
        assert_eq!(a.dims, vec![Dim::Mm(260), Dim::Mm(30)]);
        assert_eq!(a.quantity, None);
        assert_eq!(
            words("Verbundrohr 26 x 3 Rolle"),
            vec!["verbundrohr", "rolle"]
        );
        assert_eq!(dims("28 auf 1 Zoll"), vec![Dim::Mm(280), Dim::Inch(8)]);
        // Inch pairs stay inches; "zwei mal" is a count, not a dimension.
        assert_eq!(dims("3/4 x 1/2"), vec![Dim::Inch(6), Dim::Inch(4)]);
        let a = analyze("zwei mal T-Stück 22 mm");
        assert_eq!(a.dims, vec![Dim::Mm(220)]);
        assert_eq!(words("zwei mal T-Stück 22 mm"), vec!["tstueck"]);
    }

    fn run_digits(q: &str) -> Vec<(String, bool)> {
        number_runs(&fold(q))
            .into_iter()
            .map(|r| (r.pieces.concat(), r.cue))
            .collect()
    }

    #[test]
    fn number_runs_for_article_numbers() {
        assert_eq!(
            run_digits("sechs null null null eins acht"),
            vec![("600018".to_string(), false)]
        );
        assert_eq!(
            run_digits("Artikel 300 012"),
            vec![("300012".to_string(), true)]
        );
        assert_eq!(
            run_digits("Nummer 4-0-0-0-0-2"),
            vec![("400002".to_string(), true)]
        );
        assert_eq!(
            run_digits("Bestellnummer 300 Strich 004"),
            vec![("300004".to_string(), true)]
        );
        assert_eq!(
            run_digits("Art.-Nr. 100.092"),
            vec![("100092".to_string(), true)]
        );
        assert_eq!(
            run_digits("vierhunderttausenddreißig"),
            vec![("400030".to_string(), false)]
        );
        assert_eq!(
            run_digits("dreihundertzwölf"),
            vec![("312".to_string(), false)]
        );
        // Sizes and quantities end a run and never join it.
        assert_eq!(
            run_digits("vier null null null null zwei, zehn Stück"),
            vec![("400002".to_string(), false)]
        );
        assert!(run_digits("T-Stück zwei Zoll, 15 mm, DN 20, 16 x 2, 3,5, M8").is_empty());
        assert!(run_digits("ein T-Stück").is_empty());
    }

    #[test]
    fn hostile_text_stays_bounded() {
        let long_word = "zweiundzwanzig".repeat(2000);
        let digits = "1 ".repeat(20_000);
        let separators = "-/,.;:\"'x ".repeat(5_000);
        for q in [&long_word, &digits, &separators] {
            let t = std::time::Instant::now();
            let a = analyze(q);
            let runs = number_runs(&fold(q));
            assert!(runs.len() <= MAX_RUNS);
            assert!(runs.iter().all(|r| r.pieces.len() <= MAX_RUN_PIECES));
            assert!(a.words.len() <= 1 || q == &separators, "{}", a.words.len());
            assert!(t.elapsed() < std::time::Duration::from_secs(1));
        }
    }
}
