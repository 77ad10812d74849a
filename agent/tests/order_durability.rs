//! Orders a caller was told about survive a crash.
//!
//! A child process (this test binary again, in the "writer" role) takes orders through the real
//! tool handlers — `add_to_order`, `get_order`, `confirm_order` — from several threads, each
//! with its own connection to one database, and prints every order number only after
//! `confirm_order` returned it: exactly the moment the agent would read it to the caller. The
//! parent SIGKILLs the child in the middle of that, reopens the database and checks that every
//! printed order is there with its items, that the file is intact, and that numbering goes on
//! without reusing a number. Five rounds on the same database, killed at different points.
//!
//! SIGKILL tests a process crash (the kernel still has the page cache); power loss is covered
//! by `synchronous=FULL`, which cannot be pulled out from under a test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use agent::ordering::{handle_tool_call, Catalog, OrderFilter, OrderSession, OrderStatus};
use agent::ordering::{OrderContext, OrderStore};
use chrono::Utc;
use serde_json::json;

const WRITER_ENV: &str = "ORDER_DURABILITY_WRITER_DIR";
const WRITER_THREADS: usize = 3;

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/catalog")
}

/// The articles (number, quantity) order `n` of thread `t` contains: 1–3 lines, whole
/// quantities, spread over the catalog.
fn order_lines(catalog: &Catalog, t: usize, n: usize) -> Vec<(String, u32)> {
    let products = catalog.products();
    (0..1 + (n + t) % 3)
        .map(|k| {
            let p = &products[(t * 131 + n * 17 + k * 7) % products.len()];
            (p.article_no.clone(), (1 + (n + k) % 5) as u32)
        })
        .collect()
}

/// Takes orders forever through the tool handlers, printing `ORDER <no> <article>x<qty>;…`
/// once `confirm_order` has returned the number.
fn write_orders(dir: &Path, t: usize) {
    let catalog = Catalog::load_dir(&catalog_dir()).expect("catalog");
    let mut store = OrderStore::open_in(dir).expect("order store");
    for n in 0.. {
        let mut session =
            OrderSession::new(format!("crash-{t}-{n}"), format!("49301{t}"), Utc::now());
        let mut ctx = OrderContext {
            catalog: &catalog,
            session: &mut session,
            store: &mut store,
            now: Utc::now(),
        };
        let lines = order_lines(&catalog, t, n);
        for (article, qty) in &lines {
            let r = handle_tool_call(
                &mut ctx,
                "add_to_order",
                &json!({"article_no": article, "quantity": qty}),
            );
            assert_eq!(r["ok"], true, "{r}");
        }
        assert_eq!(
            handle_tool_call(&mut ctx, "get_order", &json!({}))["ok"],
            true
        );
        let r = handle_tool_call(
            &mut ctx,
            "confirm_order",
            &json!({"customer_confirmed": true}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let items: Vec<String> = lines.iter().map(|(a, q)| format!("{a}x{q}")).collect();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ORDER {} {}",
            r["order_no"].as_str().unwrap(),
            items.join(";")
        )
        .unwrap();
        out.flush().unwrap();
    }
}

/// The child's role; a no-op in a normal test run.
#[test]
fn crash_writer_role() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || write_orders(&dir, t))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Parses `ORDER A-2026-000001 100003x2;300002x10`.
fn parse_line(line: &str) -> Option<(String, Vec<(String, f64)>)> {
    let mut parts = line.strip_prefix("ORDER ")?.split(' ');
    let no = parts.next()?.to_string();
    let items = parts
        .next()?
        .split(';')
        .map(|i| {
            let (a, q) = i.split_once('x').expect("article x quantity");
            (a.to_string(), q.parse().expect("quantity"))
        })
        .collect();
    Some((no, items))
}

#[test]
fn every_order_number_a_caller_was_told_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut told: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for round in 0..5usize {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_writer_role",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(order) = parse_line(&line) {
                    if tx.send(order).is_err() {
                        break;
                    }
                }
            }
        });
        // Kill at a different point each round, while the writers are busy confirming.
        let kill_after = 10 + round * 23;
        let mut this_round = 0;
        while this_round < kill_after {
            let (no, items) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the writer confirms orders");
            assert!(
                told.insert(no.clone(), items).is_none(),
                "{no} was given out twice"
            );
            this_round += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the writer was killed, not finished: {status}"
        );
        reader.join().unwrap();
        // Numbers printed before the kill but not read yet were told too.
        for (no, items) in rx.try_iter() {
            assert!(
                told.insert(no.clone(), items).is_none(),
                "{no} was given out twice"
            );
            this_round += 1;
        }

        let store = OrderStore::open_in(dir.path()).unwrap();
        let check: String = rusqlite::Connection::open(store.path())
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}: the database is damaged");
        let stored = store.list(&OrderFilter::default()).unwrap();
        let by_no: BTreeMap<&str, &agent::ordering::StoredOrder> = stored
            .iter()
            .filter_map(|o| o.order_no.as_deref().map(|n| (n, o)))
            .collect();
        for (no, items) in &told {
            let order = by_no
                .get(no.as_str())
                .unwrap_or_else(|| panic!("round {round}: order {no} was told but is missing"));
            assert_eq!(order.status, OrderStatus::Confirmed);
            let got: Vec<(String, f64)> = order
                .items
                .iter()
                .map(|i| (i.article_no.clone(), i.quantity))
                .collect();
            assert_eq!(&got, items, "round {round}: items of {no}");
        }
        // At most one commit per writer can have landed without being printed.
        let untold = stored.len() - told.len();
        eprintln!(
            "round {round}: killed after {this_round} told orders; {} stored in total, {} told, \
             {untold} committed but not yet told",
            stored.len(),
            told.len()
        );
        assert!(
            untold <= WRITER_THREADS * (round + 1),
            "{untold} untold orders"
        );
    }
    // Numbers went on after every crash without reuse (the UNIQUE column would refuse a
    // duplicate; this checks the counter never went backwards).
    let store = OrderStore::open_in(dir.path()).unwrap();
    let mut seqs: Vec<u64> = store
        .list(&OrderFilter::default())
        .unwrap()
        .iter()
        .filter_map(|o| o.order_no.as_deref()?.rsplit('-').next()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "order numbers have gaps or repeats"
    );
}
