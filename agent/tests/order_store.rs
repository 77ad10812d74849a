//! Order storage: round trips, filters, exports, abandoned orders and durability as seen from a
//! second connection.

use std::path::PathBuf;

use agent::ordering::store::{export_csv, export_json, NewOrder, OrderLine};
use agent::ordering::{OrderFilter, OrderSession, OrderStatus, OrderStore};
use chrono::{DateTime, TimeZone, Utc};

/// A fresh directory per test under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("order-store-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

fn order(call: &str, caller: &str, start: DateTime<Utc>) -> NewOrder {
    NewOrder {
        call_id: call.into(),
        caller: caller.into(),
        started_at: start,
        items: vec![
            OrderLine {
                article_no: "100003".into(),
                name: "T-Stück 3/4\" Messing".into(),
                quantity: 2.0,
                unit: "Stück".into(),
                unit_price_cents: 419,
            },
            OrderLine {
                article_no: "300003".into(),
                name: "Kupferrohr 15 mm, Stange".into(),
                quantity: 10.5,
                unit: "Meter".into(),
                unit_price_cents: 650,
            },
        ],
        transcript: "Anrufer: zwei T-Stücke, dreiviertel Zoll, Messing\nAgent: Gerne.".into(),
    }
}

#[test]
fn confirm_round_trip_and_numbering() {
    let dir = TempDir::new("roundtrip");
    let mut store = OrderStore::open_in(&dir.0).unwrap();
    let o = order("call-1", "+49301234567", at(2026, 3, 2, 9));
    let no1 = store.confirm(&o, at(2026, 3, 2, 10)).unwrap();
    let no2 = store.confirm(&o, at(2026, 3, 2, 11)).unwrap();
    let no3 = store.confirm(&o, at(2027, 1, 1, 8)).unwrap();
    assert_eq!(
        (no1.as_str(), no2.as_str(), no3.as_str()),
        ("A-2026-000001", "A-2026-000002", "A-2027-000001")
    );

    let got = store.get(&no1).unwrap().expect("stored");
    assert_eq!(got.status, OrderStatus::Confirmed);
    assert_eq!(got.items, o.items);
    assert_eq!(got.caller, "+49301234567");
    assert_eq!(got.call_id, "call-1");
    assert_eq!(got.transcript, o.transcript);
    assert_eq!(got.total_net_cents, 2 * 419 + 6825);
    assert_eq!(got.started_at, "2026-03-02T09:00:00.000Z");
    assert_eq!(got.ended_at, "2026-03-02T10:00:00.000Z");
    assert!(store.get("A-1999-000001").unwrap().is_none());
}

#[test]
fn confirmed_order_is_visible_from_second_connection_immediately() {
    let dir = TempDir::new("durable");
    let mut writer = OrderStore::open_in(&dir.0).unwrap();
    let reader = OrderStore::open_in(&dir.0).unwrap();
    let no = writer
        .confirm(&order("call-9", "+4940111", Utc::now()), Utc::now())
        .unwrap();
    let seen = reader
        .get(&no)
        .unwrap()
        .expect("visible to a second connection right after confirm");
    assert_eq!(seen.items.len(), 2);
    // The file is in WAL mode, so readers never block the writer.
    let mode: String = rusqlite::Connection::open(writer.path())
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn filters_by_date_status_and_caller() {
    let dir = TempDir::new("filters");
    let mut store = OrderStore::open_in(&dir.0).unwrap();
    store
        .confirm(&order("c1", "+491", at(2026, 3, 1, 9)), at(2026, 3, 1, 10))
        .unwrap();
    store
        .confirm(&order("c2", "+492", at(2026, 3, 5, 9)), at(2026, 3, 5, 10))
        .unwrap();
    store
        .save_abandoned(&order("c3", "+491", at(2026, 3, 7, 9)), at(2026, 3, 7, 10))
        .unwrap();

    let all = store.list(&OrderFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|o| o.call_id.as_str()).collect::<Vec<_>>(),
        ["c1", "c2", "c3"]
    );
    let march_2_to_6 = OrderFilter {
        from: Some(at(2026, 3, 2, 0)),
        to: Some(at(2026, 3, 6, 0)),
        ..Default::default()
    };
    assert_eq!(
        store
            .list(&march_2_to_6)
            .unwrap()
            .iter()
            .map(|o| o.call_id.as_str())
            .collect::<Vec<_>>(),
        ["c2"]
    );
    let abandoned = OrderFilter {
        status: Some(OrderStatus::Abandoned),
        ..Default::default()
    };
    let a = store.list(&abandoned).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].order_no, None);
    let by_caller = OrderFilter {
        caller: Some("+491".into()),
        ..Default::default()
    };
    assert_eq!(store.list(&by_caller).unwrap().len(), 2);
    let none = OrderFilter {
        caller: Some("+491".into()),
        status: Some(OrderStatus::Confirmed),
        from: Some(at(2026, 3, 2, 0)),
        ..Default::default()
    };
    assert!(store.list(&none).unwrap().is_empty());
}

#[test]
fn exports_csv_and_json() {
    let dir = TempDir::new("export");
    let mut store = OrderStore::open_in(&dir.0).unwrap();
    let no = store
        .confirm(&order("c1", "+491", at(2026, 3, 1, 9)), at(2026, 3, 1, 10))
        .unwrap();
    let mut empty = order("c2", "+492", at(2026, 3, 1, 11));
    empty.items.clear();
    store.save_abandoned(&empty, at(2026, 3, 1, 12)).unwrap();
    let orders = store.list(&OrderFilter::default()).unwrap();

    let mut buf = Vec::new();
    export_csv(&orders, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(&rows[0][0], no.as_str());
    assert_eq!(&rows[0][8], "T-Stück 3/4\" Messing");
    assert_eq!(&rows[1][9], "10.5");
    assert_eq!(&rows[1][12], "68.25");
    assert_eq!(&rows[1][13], "76.63");
    assert_eq!(&rows[2][1], "abandoned");
    assert_eq!(&rows[2][7], "");

    let json = export_json(&orders);
    assert_eq!(json[0]["order_no"], no.as_str());
    assert_eq!(json[0]["status"], "confirmed");
    assert_eq!(json[0]["items"][1]["quantity"], 10.5);
    assert_eq!(json[1]["status"], "abandoned");
    assert_eq!(json[1]["order_no"], serde_json::Value::Null);
}

#[test]
fn hang_up_stores_unconfirmed_order_as_abandoned_with_items() {
    let dir = TempDir::new("abandon");
    let mut store = OrderStore::open_in(&dir.0).unwrap();
    let catalog = agent::ordering::Catalog::load_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/catalog"),
    )
    .unwrap();
    let mut session = OrderSession::new("call-x", "+4989000", at(2026, 4, 1, 9));
    session.add_transcript("Anrufer", "Zwei T-Stücke dreiviertel Zoll Messing");
    let r = agent::ordering::tools::add_to_order(
        &catalog,
        &mut session,
        &serde_json::json!({"article_no": "100003", "quantity": 2}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let id = session.finish(&mut store, at(2026, 4, 1, 9)).unwrap();
    assert!(id.is_some());
    assert_eq!(
        session.finish(&mut store, at(2026, 4, 1, 9)).unwrap(),
        None,
        "stored only once"
    );
    let a = store
        .list(&OrderFilter {
            status: Some(OrderStatus::Abandoned),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].items[0].article_no, "100003");
    assert_eq!(a[0].items[0].quantity, 2.0);
    assert!(a[0].transcript.contains("dreiviertel"));
}
