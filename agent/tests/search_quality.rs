//! Search quality on realistic spoken queries: top-3 accuracy over agent/tests/data/search_queries.tsv
//! against the committed sample catalog. Prints the accuracy per kind and every failure with the
//! top 3 it got, so a ranking change shows exactly what it broke.
//!
//! `SEARCH_QUERIES=/path/to/other.tsv` runs another query set of the same format instead (e.g. a
//! held-out set kept outside the repository).

use std::collections::BTreeMap;
use std::path::Path;

use agent::ordering::Catalog;

const MIN_TOP3: f64 = 0.95;

struct Case {
    query: String,
    expected: Vec<String>,
    kind: String,
}

fn cases() -> Vec<Case> {
    let path = match std::env::var_os("SEARCH_QUERIES") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/search_queries.tsv"),
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(
                f.len() >= 2,
                "{}:{}: expected query<TAB>articles",
                path.display(),
                i + 1
            );
            Case {
                query: f[0].to_string(),
                expected: f[1].split('|').map(|s| s.trim().to_string()).collect(),
                kind: f.get(2).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

#[test]
fn top3_accuracy() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/catalog");
    let catalog = Catalog::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cases = cases();
    assert!(
        cases.len() >= 100 || std::env::var_os("SEARCH_QUERIES").is_some(),
        "test set has only {} queries",
        cases.len()
    );
    for c in &cases {
        for e in &c.expected {
            assert!(
                catalog.get(e).is_some(),
                "query `{}` expects unknown article {e}",
                c.query
            );
        }
    }
    let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut top1 = 0;
    let mut second = Vec::new();
    for c in &cases {
        let r = catalog.search(&c.query, 3);
        let got: Vec<&str> = r
            .hits
            .iter()
            .map(|h| catalog.products()[h.index].article_no.as_str())
            .collect();
        let ok = got.iter().any(|g| c.expected.iter().any(|e| e == g));
        if got
            .first()
            .is_some_and(|g| c.expected.iter().any(|e| e == g))
        {
            top1 += 1;
        } else if ok {
            let p = &catalog.products()[r.hits[0].index];
            second.push(format!(
                "  `{}` expected {:?}, first {} {}",
                c.query, c.expected, p.article_no, p.name
            ));
        }
        let k = per_kind.entry(c.kind.as_str()).or_default();
        k.1 += 1;
        if ok {
            k.0 += 1;
        } else {
            let shown: Vec<String> = r
                .hits
                .iter()
                .map(|h| {
                    let p = &catalog.products()[h.index];
                    format!("{} {} ({:.2})", p.article_no, p.name, h.score)
                })
                .collect();
            failures.push(format!(
                "  `{}` expected {:?}, got [{}]",
                c.query,
                c.expected,
                shown.join("; ")
            ));
        }
    }
    let passed: usize = per_kind.values().map(|v| v.0).sum();
    let acc = passed as f64 / cases.len() as f64;
    println!(
        "search quality: top-3 {passed}/{} = {:.1} %, top-1 {top1}/{}",
        cases.len(),
        acc * 100.0,
        cases.len()
    );
    for (k, (p, n)) in &per_kind {
        println!("  {k:<11} {p}/{n}");
    }
    if !second.is_empty() {
        println!("in the top 3 but not first:\n{}", second.join("\n"));
    }
    if !failures.is_empty() {
        println!("failures:\n{}", failures.join("\n"));
    }
    assert!(
        acc >= MIN_TOP3,
        "top-3 accuracy {:.1} % below {:.0} %",
        acc * 100.0,
        MIN_TOP3 * 100.0
    );
}
