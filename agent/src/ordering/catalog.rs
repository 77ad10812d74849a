//! The product catalog: CSV files under a directory (format in docs/CATALOG.md), validated on
//! load, with the search index built once.
//!
//! A catalog directory may also hold a `lexicon.txt` with the customers' own words (trade names,
//! brands, regional words; see [`super::lexicon`]); it is validated with the CSV files.
//!
//! Loading collects *all* problems with file, line and field instead of stopping at the first, so
//! whoever maintains the catalog export fixes it in one round. A catalog with any error is not
//! used at all: a half-loaded catalog would make the bot quietly unable to sell some articles.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::lexicon::{self, Lexicon};
use super::normalize;
use super::search::{SearchIndex, SearchResult};
use super::vocabulary::{Product, Unit};

/// The columns every catalog file must have, in any order.
pub const COLUMNS: [&str; 11] = [
    "article_no",
    "name",
    "category",
    "size",
    "material",
    "connection",
    "pressure",
    "angle",
    "unit",
    "price_eur",
    "synonyms",
];

/// One problem found while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based line; 0 for problems with the file as a whole.
    pub line: u64,
    pub field: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        match self.field {
            Some(field) => write!(f, ": field `{field}`: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

/// All problems of a failed load, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError(pub Vec<LoadError>);

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "catalog has {} error(s):", self.0.len())?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogError {}

/// The loaded catalog with its search index.
pub struct Catalog {
    products: Vec<Product>,
    by_article: HashMap<String, usize>,
    index: SearchIndex,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("products", &self.products.len())
            .finish()
    }
}

impl Catalog {
    /// Loads every `*.csv` file in `dir` (sorted by name, not recursive).
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            CatalogError(vec![LoadError {
                file: dir.to_path_buf(),
                line: 0,
                field: None,
                message: format!("cannot read catalog directory: {e}"),
            }])
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CatalogError(vec![LoadError {
                file: dir.to_path_buf(),
                line: 0,
                field: None,
                message: "no *.csv files in the catalog directory".into(),
            }]));
        }
        let lexicon_path = dir.join(lexicon::FILE_NAME);
        let lexicon = match std::fs::read_to_string(&lexicon_path) {
            Ok(text) => Some((lexicon_path, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(CatalogError(vec![LoadError {
                    file: lexicon_path,
                    line: 0,
                    field: None,
                    message: format!("cannot read: {e}"),
                }]))
            }
        };
        let mut sources = Vec::new();
        for f in &files {
            match std::fs::read(f) {
                Ok(bytes) => sources.push((f.clone(), bytes)),
                Err(e) => {
                    return Err(CatalogError(vec![LoadError {
                        file: f.clone(),
                        line: 0,
                        field: None,
                        message: format!("cannot read: {e}"),
                    }]))
                }
            }
        }
        Self::from_sources(
            sources.iter().map(|(p, b)| (p.as_path(), b.as_slice())),
            lexicon.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        )
    }

    /// Parses catalog CSV text from memory; `file` is only used in messages.
    pub fn from_csv(file: &Path, csv: &str) -> Result<Catalog, CatalogError> {
        Self::from_sources([(file, csv.as_bytes())], None)
    }

    /// Like [`Catalog::from_csv`], with the text of a lexicon file (see docs/CATALOG.md).
    pub fn from_csv_with_lexicon(
        file: &Path,
        csv: &str,
        lexicon_file: &Path,
        lexicon: &str,
    ) -> Result<Catalog, CatalogError> {
        Self::from_sources([(file, csv.as_bytes())], Some((lexicon_file, lexicon)))
    }

    fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a Path, &'a [u8])>,
        lexicon: Option<(&Path, &str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut errors = Vec::new();
        let mut products: Vec<Product> = Vec::new();
        let mut by_article: HashMap<String, usize> = HashMap::new();
        for (file, bytes) in sources {
            for p in parse_file(file, bytes, &mut errors) {
                if let Some(&prev) = by_article.get(&p.article_no) {
                    let (f, line) = p.source.rsplit_once(':').unwrap_or((&p.source, "0"));
                    errors.push(LoadError {
                        file: PathBuf::from(f),
                        line: line.parse().unwrap_or(0),
                        field: Some("article_no"),
                        message: format!(
                            "duplicate article number `{}` (first defined at {})",
                            p.article_no, products[prev].source
                        ),
                    });
                    continue;
                }
                by_article.insert(p.article_no.clone(), products.len());
                products.push(p);
            }
        }
        let lexicon = match lexicon {
            None => Lexicon::builtin(),
            Some((file, text)) => {
                let err = |line: u64, message: String| LoadError {
                    file: file.to_path_buf(),
                    line,
                    field: None,
                    message,
                };
                let (lex, problems) = Lexicon::parse(text);
                errors.extend(problems.into_iter().map(|e| err(e.line, e.message)));
                for e in lex.entries() {
                    for a in e.articles.iter().filter(|a| !by_article.contains_key(*a)) {
                        errors.push(err(
                            e.line,
                            format!("unknown article number `{a}` (not in the catalog)"),
                        ));
                    }
                }
                Lexicon::with_catalog(lex)
            }
        };
        if !errors.is_empty() {
            return Err(CatalogError(errors));
        }
        let index = SearchIndex::build(&products, lexicon);
        Ok(Catalog {
            products,
            by_article,
            index,
        })
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Exact lookup by article number (surrounding spaces ignored).
    pub fn get(&self, article_no: &str) -> Option<&Product> {
        self.by_article
            .get(article_no.trim())
            .map(|&i| &self.products[i])
    }

    /// Ranked search; see [`crate::ordering::search`].
    pub fn search(&self, query: &str, limit: usize) -> SearchResult {
        self.index.search(&self.products, query, limit)
    }

    /// Product categories, sorted, each once.
    pub fn categories(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.products.iter().map(|p| p.category.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }
}

fn parse_file(file: &Path, bytes: &[u8], errors: &mut Vec<LoadError>) -> Vec<Product> {
    let err = |line: u64, field: Option<&'static str>, message: String| LoadError {
        file: file.to_path_buf(),
        line,
        field,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(err(1, None, format!("cannot read header: {e}")));
            return Vec::new();
        }
    };
    let mut col: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim().trim_start_matches('\u{feff}');
        match COLUMNS.iter().find(|c| **c == h) {
            Some(c) => {
                col.insert(c, i);
            }
            None => errors.push(err(
                1,
                None,
                format!("unknown column `{h}` (expected: {})", COLUMNS.join(", ")),
            )),
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| !col.contains_key(c))
        .collect();
    if !missing.is_empty() {
        errors.push(err(
            1,
            None,
            format!("missing column(s): {}", missing.join(", ")),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(err(line, None, format!("malformed CSV record: {e}")));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        let get = |c: &str| rec.get(col[c]).unwrap_or("").trim();
        let before = errors.len();
        let mut field_err =
            |field: &'static str, msg: String| errors.push(err(line, Some(field), msg));

        let article_no = get("article_no");
        if article_no.is_empty() {
            field_err("article_no", "must not be empty".into());
        } else if article_no.chars().any(|c| c.is_whitespace() || c == ',') {
            field_err(
                "article_no",
                format!("`{article_no}` must not contain spaces or commas"),
            );
        }
        for f in ["name", "category"] {
            if get(f).is_empty() {
                field_err(
                    if f == "name" { "name" } else { "category" },
                    "must not be empty".into(),
                );
            }
        }
        let size = get("size");
        let dims = if size.is_empty() {
            Vec::new()
        } else {
            normalize::parse_size(size).unwrap_or_else(|e| {
                field_err(
                    "size",
                    format!(
                        "{e} in `{size}` (expected dimensions like `15 mm`, `3/4 Zoll`, `1 1/4 Zoll` or \
                         `DN 20`, several joined with ` x `)"
                    ),
                );
                Vec::new()
            })
        };
        let pressure = match get("pressure") {
            "" => None,
            p => normalize::parse_prefixed(p, "pn").or_else(|| {
                field_err(
                    "pressure",
                    format!("cannot read `{p}` (expected e.g. `PN 16` or empty)"),
                );
                None
            }),
        };
        let angle = match get("angle") {
            "" => None,
            a => normalize::parse_angle(a).or_else(|| {
                field_err(
                    "angle",
                    format!("cannot read `{a}` (expected e.g. `90°` or empty)"),
                );
                None
            }),
        };
        let unit_s = get("unit");
        let unit = Unit::from_catalog(unit_s).or_else(|| {
            let all: Vec<&str> = Unit::ALL.iter().map(|u| u.as_str()).collect();
            field_err(
                "unit",
                format!(
                    "unknown unit `{unit_s}` (expected one of {})",
                    all.join(", ")
                ),
            );
            None
        });
        let price_s = get("price_eur");
        let price_cents = parse_price(price_s).or_else(|| {
            field_err(
                "price_eur",
                format!("cannot read `{price_s}` (expected a non-negative amount like `12.50`)"),
            );
            None
        });
        if errors.len() > before {
            continue;
        }
        let (Some(unit), Some(price_cents)) = (unit, price_cents) else {
            continue;
        };
        let synonyms = get("synonyms")
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        out.push(Product {
            article_no: article_no.to_string(),
            name: get("name").to_string(),
            category: get("category").to_string(),
            size: size.to_string(),
            dims,
            material: get("material").to_string(),
            connection: get("connection").to_string(),
            pressure,
            angle,
            unit,
            price_cents,
            synonyms,
            source: format!("{}:{line}", file.display()),
        });
    }
    out
}

/// "12.50" → 1250 cents; at most two decimals, no sign, no thousands separators.
fn parse_price(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 9
    {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    Some(w * 100 + f)
}

/// Formats cents as "12,50 €"-free plain euro amount "12.50" for JSON and CSV.
pub fn format_eur(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering::vocabulary::Dim;

    const HEADER: &str =
        "article_no,name,category,size,material,connection,pressure,angle,unit,price_eur,synonyms\n";

    #[test]
    fn loads_valid_rows() {
        let csv = format!(
            "{HEADER}100,\"T-Stück 3/4\"\" Messing\",T-Stück,3/4 Zoll,Messing,Gewinde,PN 16,,Stück,4.19,Tee-Stück|Abzweig\n\
             101,Kupferrohr 15 mm,Kupferrohr,15 mm,Kupfer,Pressen,,,Meter,6.5,\n"
        );
        let c = Catalog::from_csv(Path::new("x.csv"), &csv).unwrap();
        assert_eq!(c.len(), 2);
        let p = c.get("100").unwrap();
        assert_eq!(p.dims, vec![Dim::Inch(6)]);
        assert_eq!(p.price_cents, 419);
        assert_eq!(p.pressure, Some(16));
        assert_eq!(p.synonyms, vec!["Tee-Stück", "Abzweig"]);
        assert_eq!(c.get("101").unwrap().price_cents, 650);
        assert_eq!(p.source, "x.csv:2");
    }

    #[test]
    fn reports_file_line_and_field() {
        let csv = format!(
            "{HEADER}100,A,T-Stück,3/4 Zoll,Messing,,,,Stk.,1.00,\n\
             101,B,T-Stück,gross,Messing,,PN x,,Stück,-1,\n\
             100,C,T-Stück,,Messing,,,,Stück,1.00,\n"
        );
        let e = Catalog::from_csv(Path::new("data/catalog/x.csv"), &csv).unwrap_err();
        let text: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert!(text[0].starts_with("data/catalog/x.csv:2: field `unit`: unknown unit `Stk.` (expected one of Stück, Meter"), "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.starts_with("data/catalog/x.csv:3: field `size`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("data/catalog/x.csv:3: field `pressure`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("data/catalog/x.csv:3: field `price_eur`")),
            "{text:?}"
        );
        // Row 2 was rejected, so "100" on line 4 is not a duplicate; make a real one:
        let csv = format!("{HEADER}100,A,T,,,,,,Stück,1.00,\n100,B,T,,,,,,Stück,1.00,\n");
        let e = Catalog::from_csv(Path::new("y.csv"), &csv).unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "y.csv:3: field `article_no`: duplicate article number `100` (first defined at y.csv:2)"
        );
    }

    #[test]
    fn rejects_bad_header() {
        let e =
            Catalog::from_csv(Path::new("z.csv"), "article_no,name,colour\n1,a,b\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("unknown column `colour`"), "{s}");
        assert!(s.contains("missing column(s): category"), "{s}");
    }

    #[test]
    fn prices_and_units() {
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price("0.05"), Some(5));
        assert_eq!(parse_price("12,50"), None);
        assert_eq!(parse_price("1.234"), None);
        assert_eq!(format_eur(1250), "12.50");
    }

    #[test]
    fn lexicon_problems_are_reported_with_the_catalog() {
        let csv = format!("{HEADER}100,A,Muffe,,,,,,Stück,1.00,\n");
        let e = Catalog::from_csv_with_lexicon(
            Path::new("x.csv"),
            &csv,
            Path::new("data/catalog/lexicon.txt"),
            "# ok\nFermit = Dichtpaste\nUnipak = Artikel 999\nBride Rohrschelle\n",
        )
        .unwrap_err();
        let text: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "data/catalog/lexicon.txt:4: expected `words callers say = catalog words` (or \
                 `= Artikel <number>`), got `Bride Rohrschelle`",
                "data/catalog/lexicon.txt:3: unknown article number `999` (not in the catalog)",
            ]
        );
    }

    #[test]
    fn sample_catalog_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/catalog");
        let c = Catalog::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.len() >= 375, "{}", c.len());
        assert!(c.categories().contains(&"T-Stück"));
        // The sample's lexicon was read (a brand name finds the product).
        let r = c.search("Fermit Dose", 1);
        assert_eq!(c.products()[r.hits[0].index].category, "Dichtpaste");
    }
}
