//! Search benchmark (plain harness): catalog load time, memory (RSS delta from /proc/self/status)
//! and query latency p50/p99/max for the sample catalog and a generated 100,000-product catalog.
//!
//! The large catalog is generated at bench time by scripts/gen_catalog.py into target/ (never
//! committed). Queries are the search quality test set, so latency is measured on realistic input.
//! Targets: sample p99 ≤ 1 ms, 100k p99 ≤ 10 ms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent::ordering::Catalog;

const ROUNDS: usize = 20;

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn queries(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("agent/tests/data/search_queries.tsv"))
        .expect("query set");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next().map(String::from))
        .collect()
}

fn large_catalog(root: &Path, count: usize) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join(format!("bench-catalog-{count}"));
    if !dir.join("synthetic.csv").exists() {
        let status = Command::new("python3")
            .arg(root.join("scripts/gen_catalog.py"))
            .args(["--count", &count.to_string(), "--out"])
            .arg(&dir)
            .status()
            .expect("python3 is needed to generate the benchmark catalog");
        assert!(status.success(), "gen_catalog.py failed");
    }
    dir
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn run(label: &str, dir: &Path, queries: &[String]) {
    let before = rss_kib();
    let t = Instant::now();
    let catalog = Catalog::load_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    let load = t.elapsed();
    let after = rss_kib();
    let mem = match (before, after) {
        (Some(b), Some(a)) => format!("{:.1}", a.saturating_sub(b) as f64 / 1024.0),
        _ => "n/a".into(),
    };
    // Warm-up, then measure every query ROUNDS times.
    let mut found = 0;
    for q in queries {
        found += usize::from(!catalog.search(q, 5).hits.is_empty());
    }
    let mut lat = Vec::with_capacity(queries.len() * ROUNDS);
    let mut per_query = vec![Duration::ZERO; queries.len()];
    for _ in 0..ROUNDS {
        for (i, q) in queries.iter().enumerate() {
            let t = Instant::now();
            let r = catalog.search(q, 5);
            let d = t.elapsed();
            lat.push(d);
            per_query[i] = per_query[i].max(d);
            std::hint::black_box(r);
        }
    }
    lat.sort_unstable();
    let mut slow: Vec<(Duration, &str)> = per_query
        .iter()
        .zip(queries)
        .map(|(d, q)| (*d, q.as_str()))
        .collect();
    slow.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    if std::env::var_os("SEARCH_BENCH_SLOWEST").is_some() {
        for (d, q) in slow.iter().take(8) {
            eprintln!("  {label}: {} us  {q}", us(*d));
        }
    }
    println!(
        "| {label:<14} | {:>8} | {:>9.1} | {:>8} | {:>8} | {:>8} | {:>8} | {:>5}/{:<5} |",
        catalog.len(),
        load.as_secs_f64() * 1e3,
        mem,
        us(pct(&lat, 0.5)),
        us(pct(&lat, 0.99)),
        us(*lat.last().unwrap()),
        found,
        queries.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let queries = queries(&root);
    let large = large_catalog(&root, 100_000);
    println!(
        "search benchmark: {} queries x {ROUNDS} rounds, limit 5",
        queries.len()
    );
    println!("| catalog        | products | load (ms) | RSS (MiB)| p50 (us) | p99 (us) | max (us) | with hits   |");
    println!("|----------------|----------|-----------|----------|----------|----------|----------|-------------|");
    run("sample", &root.join("data/catalog"), &queries);
    run("synthetic 100k", &large, &queries);
}
