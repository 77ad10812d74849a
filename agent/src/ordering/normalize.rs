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

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::catalog::Unit;

/// A typed size or rating. Millimetres are kept in tenths, inches in eighths, so that equality is
/// exact and "1 1/4" is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// Outer diameter or length in tenths of a millimetre.
    Mm(u32),
    /// Thread size in eighths of an inch (1/2" = 4, 1 1/4" = 10).
    Inch(u32),
    /// Nominal diameter (Nennweite).
    Dn(u32),
    /// Angle in degrees.
    Angle(u32),
    /// Pressure rating (PN).
    Pn(u32),
}

/// Inch sizes (in eighths) that exist for pipe threads; used to decide whether "2 3/4" is one
/// size or a quantity followed by a size.
const STANDARD_EIGHTHS: [u32; 15] = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64];

impl Dim {
    /// A compact key for hash maps (kind in the high bits).
    pub fn key(self) -> u64 {
        let (kind, v) = match self {
            Dim::Mm(v) => (1u64, v),
            Dim::Inch(v) => (2, v),
            Dim::Dn(v) => (3, v),
            Dim::Angle(v) => (4, v),
            Dim::Pn(v) => (5, v),
        };
        (kind << 32) | u64::from(v)
    }

    /// The nominal diameter commonly equivalent to a thread size (1/2" ≈ DN 15 …).
    pub fn inch_to_dn(eighths: u32) -> Option<u32> {
        Some(match eighths {
            2 => 8,
            3 => 10,
            4 => 15,
            6 => 20,
            8 => 25,
            10 => 32,
            12 => 40,
            16 => 50,
            20 => 65,
            24 => 80,
            32 => 100,
            _ => return None,
        })
    }

    fn inch_from_value(v: f64) -> Option<Dim> {
        let e = v * 8.0;
        let r = e.round();
        ((e - r).abs() < 1e-6 && (1.0..=128.0).contains(&r)).then_some(Dim::Inch(r as u32))
    }

    fn mm_from_value(v: f64) -> Option<Dim> {
        let t = (v * 10.0).round();
        (v > 0.0 && t <= 100_000.0).then_some(Dim::Mm(t as u32))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dim::Mm(t) if t % 10 == 0 => write!(f, "{} mm", t / 10),
            Dim::Mm(t) => write!(f, "{},{} mm", t / 10, t % 10),
            Dim::Inch(e) => {
                let (whole, rest) = (e / 8, e % 8);
                let frac = match rest {
                    0 => String::new(),
                    r => {
                        let g = gcd(r, 8);
                        format!("{}/{}", r / g, 8 / g)
                    }
                };
                match (whole, frac.is_empty()) {
                    (0, _) => write!(f, "{frac}\""),
                    (w, true) => write!(f, "{w}\""),
                    (w, false) => write!(f, "{w} {frac}\""),
                }
            }
            Dim::Dn(v) => write!(f, "DN {v}"),
            Dim::Angle(v) => write!(f, "{v}°"),
            Dim::Pn(v) => write!(f, "PN {v}"),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

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
    w.to_string()
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
    let lexes = combine(lex(tokenize(&fold(text))));
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
                let mut j = i;
                while let Some(Lex::Value(p)) = lexes.get(j) {
                    pending.push(*p);
                    j += 1;
                    if let Some(Lex::Unit(u)) = lexes.get(j) {
                        assign(&mut a, &pending, Some(*u));
                        pending.clear();
                        j += 1;
                    }
                    if matches!(lexes.get(j), Some(Lex::Join))
                        && matches!(lexes.get(j + 1), Some(Lex::Value(_)))
                    {
                        j += 1;
                        continue;
                    }
                    break;
                }
                assign(&mut a, &pending, None);
                i = j;
            }
            Lex::Unit(_) | Lex::Join => i += 1,
        }
    }
    a
}

fn assign(a: &mut Analysis, chain: &[Piece], unit: Option<UnitWord>) {
    for &p in chain {
        let v = p.value();
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
}
