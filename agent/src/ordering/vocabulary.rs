//! The nouns every part of the ordering code shares: sales units, typed sizes, and the product
//! record itself.
//!
//! They live at the bottom of `ordering/` so that the catalog loader, the text normaliser and the
//! search can all use them without depending on each other: the catalog builds the search index,
//! the search reads products, the normaliser turns text into sizes and units, and none of them
//! has to reach "up" into another for a type. This module depends on nothing else in `ordering/`.

use std::fmt;

use serde::Serialize;

/// Sales unit of an article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Unit {
    #[serde(rename = "Stück")]
    Stueck,
    Meter,
    Packung,
    Rolle,
    Dose,
    Tube,
}

impl Unit {
    pub const ALL: [Unit; 6] = [
        Unit::Stueck,
        Unit::Meter,
        Unit::Packung,
        Unit::Rolle,
        Unit::Dose,
        Unit::Tube,
    ];

    /// The name used in the catalog and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Stueck => "Stück",
            Unit::Meter => "Meter",
            Unit::Packung => "Packung",
            Unit::Rolle => "Rolle",
            Unit::Dose => "Dose",
            Unit::Tube => "Tube",
        }
    }

    /// Whether only whole quantities can be ordered (everything but metre goods).
    pub fn is_countable(self) -> bool {
        self != Unit::Meter
    }

    /// Exact catalog spelling (the catalog is strict so exports stay consistent).
    pub fn from_catalog(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// Lenient parsing for tool input: "Stk", "stück", "m", "Meter", "Packungen" …
    pub fn parse_lenient(s: &str) -> Option<Unit> {
        let f = s
            .trim()
            .trim_end_matches('.')
            .to_lowercase()
            .replace('ü', "ue");
        Some(match f.as_str() {
            "stueck" | "stk" | "st" | "stck" | "pcs" | "piece" | "pieces" => Unit::Stueck,
            "m" | "meter" | "metern" | "mtr" | "lfm" => Unit::Meter,
            "packung" | "packungen" | "pack" | "pck" | "pkg" | "paket" | "pakete" => Unit::Packung,
            "rolle" | "rollen" | "ring" | "ringe" => Unit::Rolle,
            "dose" | "dosen" => Unit::Dose,
            "tube" | "tuben" => Unit::Tube,
            _ => return None,
        })
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

    pub(crate) fn inch_from_value(v: f64) -> Option<Dim> {
        let e = v * 8.0;
        let r = e.round();
        ((e - r).abs() < 1e-6 && (1.0..=128.0).contains(&r)).then_some(Dim::Inch(r as u32))
    }

    pub(crate) fn mm_from_value(v: f64) -> Option<Dim> {
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

/// One article.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub article_no: String,
    pub name: String,
    pub category: String,
    /// The size as written in the catalog ("3/4 Zoll", "22 mm x 15 mm"), empty if none.
    pub size: String,
    pub dims: Vec<Dim>,
    pub material: String,
    pub connection: String,
    pub pressure: Option<u32>,
    pub angle: Option<u32>,
    pub unit: Unit,
    /// Net price per unit in euro cents.
    pub price_cents: i64,
    pub synonyms: Vec<String>,
    /// Where it was defined ("data/catalog/x.csv:17"), for messages.
    pub source: String,
}

impl Product {
    /// Display form of the size ("3/4\"", "22 mm x 15 mm").
    pub fn size_label(&self) -> String {
        self.dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" x ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_dims() {
        assert_eq!(Unit::parse_lenient("Stk."), Some(Unit::Stueck));
        assert_eq!(Unit::parse_lenient("Stück"), Some(Unit::Stueck));
        assert_eq!(Unit::parse_lenient("m"), Some(Unit::Meter));
        assert_eq!(Unit::parse_lenient("Kiste"), None);
        assert!(!Unit::Meter.is_countable());
        assert_eq!(Dim::Inch(10).to_string(), "1 1/4\"");
        assert_eq!(Dim::Mm(35).to_string(), "3,5 mm");
        assert_ne!(Dim::Mm(20).key(), Dim::Dn(20).key());
    }
}
