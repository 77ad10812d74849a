//! Durable order storage in SQLite (one file under the data directory).
//!
//! Why SQLite: orders are few and precious. A confirmed order must survive a crash or power loss
//! the moment the bot has told the caller the order number, and the back office wants to list and
//! export them without a database server. The file runs in WAL mode (readers such as
//! `voiceagent orders` never block the agent) with `synchronous=FULL`, so a commit returns only
//! after the WAL is on disk. Orders are rare, so the extra fsync costs nothing that matters.
//!
//! Calls are blocking; the agent runs them on a blocking task.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::catalog::format_eur;

/// File name of the order database inside the data directory.
pub const DB_FILE: &str = "orders.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("order database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("order export: {0}")]
    Csv(#[from] csv::Error),
    #[error("order export: {0}")]
    Io(#[from] std::io::Error),
    #[error("order database holds an unknown status `{0}`")]
    BadStatus(String),
}

/// Whether the caller confirmed the order or hung up before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Confirmed,
    Abandoned,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "confirmed" => Ok(OrderStatus::Confirmed),
            "abandoned" => Ok(OrderStatus::Abandoned),
            other => Err(StoreError::BadStatus(other.to_string())),
        }
    }
}

/// One order line as stored (name and price frozen at order time).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLine {
    pub article_no: String,
    pub name: String,
    pub quantity: f64,
    pub unit: String,
    pub unit_price_cents: i64,
}

impl OrderLine {
    pub fn line_total_cents(&self) -> i64 {
        (self.quantity * self.unit_price_cents as f64).round() as i64
    }
}

/// What a call hands to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub call_id: String,
    /// The caller's number as signalled (may be empty when withheld).
    pub caller: String,
    pub started_at: DateTime<Utc>,
    pub items: Vec<OrderLine>,
    pub transcript: String,
}

/// An order as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredOrder {
    pub id: i64,
    /// "A-2026-000123"; `None` for abandoned orders.
    pub order_no: Option<String>,
    pub status: OrderStatus,
    pub call_id: String,
    pub caller: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// When it was confirmed or abandoned (RFC 3339 UTC).
    pub ended_at: String,
    pub total_net_cents: i64,
    pub items: Vec<OrderLine>,
    pub transcript: String,
}

/// Filters for [`OrderStore::list`]; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    /// `ended_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `ended_at < to`.
    pub to: Option<DateTime<Utc>>,
    pub status: Option<OrderStatus>,
    /// Exact caller number.
    pub caller: Option<String>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One connection to the order database.
pub struct OrderStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderStore")
            .field("path", &self.path)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('confirmed', 'abandoned')),
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    total_net_cents INTEGER NOT NULL,
    transcript TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_ended_at ON orders(ended_at);
CREATE TABLE IF NOT EXISTS order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    pos INTEGER NOT NULL,
    article_no TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    line_total_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, pos)
);
CREATE TABLE IF NOT EXISTS order_counter (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);
";

impl OrderStore {
    /// Opens (creating if needed) `data_dir/orders.sqlite3`.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Self::open(&data_dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(OrderStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a confirmed order and returns its number ("A-2026-000123"). Returns only after
    /// the transaction is durably committed (WAL, synchronous=FULL).
    pub fn confirm(&mut self, order: &NewOrder, now: DateTime<Utc>) -> Result<String, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let year = now.year();
        let seq: i64 = tx.query_row(
            "INSERT INTO order_counter(year, last) VALUES (?1, 1)
             ON CONFLICT(year) DO UPDATE SET last = last + 1 RETURNING last",
            params![year],
            |r| r.get(0),
        )?;
        let order_no = format!("A-{year}-{seq:06}");
        insert(&tx, Some(&order_no), OrderStatus::Confirmed, order, now)?;
        tx.commit()?;
        Ok(order_no)
    }

    /// Stores an order the caller did not confirm (hang-up), with its items. Returns its row id.
    pub fn save_abandoned(
        &mut self,
        order: &NewOrder,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = insert(&tx, None, OrderStatus::Abandoned, order, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Replaces the transcript of a confirmed order: the call goes on after `confirm_order`
    /// (order number read out, goodbye), and the whole conversation belongs to the order.
    pub fn set_transcript(&mut self, order_no: &str, transcript: &str) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE orders SET transcript = ?2 WHERE order_no = ?1",
            params![order_no, transcript],
        )?;
        Ok(changed > 0)
    }

    /// One order by its number.
    pub fn get(&self, order_no: &str) -> Result<Option<StoredOrder>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM orders WHERE order_no = ?1",
                [order_no],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Ok(self.load(&format!("WHERE o.id = {id}"), &[])?.pop()),
            None => Ok(None),
        }
    }

    /// Orders matching `filter`, oldest first.
    pub fn list(&self, filter: &OrderFilter) -> Result<Vec<StoredOrder>, StoreError> {
        let mut clauses = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(from) = filter.from {
            args.push(ts(from));
            clauses.push(format!("o.ended_at >= ?{}", args.len()));
        }
        if let Some(to) = filter.to {
            args.push(ts(to));
            clauses.push(format!("o.ended_at < ?{}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(s.as_str().to_string());
            clauses.push(format!("o.status = ?{}", args.len()));
        }
        if let Some(c) = &filter.caller {
            args.push(c.clone());
            clauses.push(format!("o.caller = ?{}", args.len()));
        }
        let where_ = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        self.load(&where_, &args)
    }

    fn load(&self, where_: &str, args: &[String]) -> Result<Vec<StoredOrder>, StoreError> {
        let sql = format!(
            "SELECT o.id, o.order_no, o.status, o.call_id, o.caller, o.started_at, o.ended_at,
                    o.total_net_cents, o.transcript
             FROM orders o {where_} ORDER BY o.ended_at, o.id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
            ))
        })?;
        let mut items_stmt = self.conn.prepare(
            "SELECT article_no, name, quantity, unit, unit_price_cents
             FROM order_items WHERE order_id = ?1 ORDER BY pos",
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, order_no, status, call_id, caller, started_at, ended_at, total, transcript) =
                row?;
            let items = items_stmt
                .query_map([id], |r| {
                    Ok(OrderLine {
                        article_no: r.get(0)?,
                        name: r.get(1)?,
                        quantity: r.get(2)?,
                        unit: r.get(3)?,
                        unit_price_cents: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(StoredOrder {
                id,
                order_no,
                status: OrderStatus::parse(&status)?,
                call_id,
                caller,
                started_at,
                ended_at,
                total_net_cents: total,
                items,
                transcript,
            });
        }
        Ok(out)
    }
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    order_no: Option<&str>,
    status: OrderStatus,
    order: &NewOrder,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let total: i64 = order.items.iter().map(OrderLine::line_total_cents).sum();
    tx.execute(
        "INSERT INTO orders(order_no, status, call_id, caller, started_at, ended_at, total_net_cents,
                            transcript)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            order_no,
            status.as_str(),
            order.call_id,
            order.caller,
            ts(order.started_at),
            ts(now),
            total,
            order.transcript
        ],
    )?;
    let id = tx.last_insert_rowid();
    let mut stmt = tx.prepare(
        "INSERT INTO order_items(order_id, pos, article_no, name, quantity, unit, unit_price_cents,
                                 line_total_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (pos, it) in order.items.iter().enumerate() {
        stmt.execute(params![
            id,
            pos as i64 + 1,
            it.article_no,
            it.name,
            it.quantity,
            it.unit,
            it.unit_price_cents,
            it.line_total_cents()
        ])?;
    }
    Ok(id)
}

/// First characters that make a spreadsheet read a cell as a formula (or, for tab, CR and LF,
/// that some programs strip before doing so): OWASP's list for CSV injection, plus LF.
const FORMULA_TRIGGERS: &[char] = &['=', '+', '-', '@', '\t', '\r', '\n'];

/// A CSV cell that a spreadsheet shows as text: fields starting with a formula trigger get a
/// leading `'`.
///
/// Why every field and not only the free-text ones: the caller number comes from the SIP `From`
/// header, which the caller writes, and article names pass through the model. A legitimate
/// `+4930123456` therefore also becomes `'+4930123456` — which keeps its `+` in a spreadsheet
/// instead of turning into the number 4930123456. The JSON export is not altered.
pub fn csv_cell(field: &str) -> std::borrow::Cow<'_, str> {
    if field.starts_with(FORMULA_TRIGGERS) {
        std::borrow::Cow::Owned(format!("'{field}"))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

/// Writes one CSV row per order line (orders without lines get one row with empty line fields).
/// Every field passes through [`csv_cell`] (spreadsheet formula injection).
pub fn export_csv<W: Write>(orders: &[StoredOrder], out: W) -> Result<(), StoreError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
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
        "order_total_net_eur",
    ])?;
    for o in orders {
        let head = [
            o.order_no.clone().unwrap_or_default(),
            o.status.as_str().to_string(),
            o.started_at.clone(),
            o.ended_at.clone(),
            o.caller.clone(),
            o.call_id.clone(),
        ];
        let total = format_eur(o.total_net_cents);
        if o.items.is_empty() {
            let mut rec: Vec<String> = head.to_vec();
            rec.extend(std::iter::repeat_n(String::new(), 7));
            rec.push(total.clone());
            w.write_record(rec.iter().map(|f| csv_cell(f).into_owned()))?;
        }
        for (i, it) in o.items.iter().enumerate() {
            let mut rec: Vec<String> = head.to_vec();
            rec.extend([
                (i + 1).to_string(),
                it.article_no.clone(),
                it.name.clone(),
                it.quantity.to_string(),
                it.unit.clone(),
                format_eur(it.unit_price_cents),
                format_eur(it.line_total_cents()),
                total.clone(),
            ]);
            w.write_record(rec.iter().map(|f| csv_cell(f).into_owned()))?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The orders as a JSON array (amounts in cents, timestamps RFC 3339 UTC).
pub fn export_json(orders: &[StoredOrder]) -> serde_json::Value {
    serde_json::to_value(orders).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_triggers_are_neutralised() {
        for hostile in [
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1",
            "\r=1",
            "\n=1",
            "=",
        ] {
            assert_eq!(csv_cell(hostile), format!("'{hostile}"), "{hostile:?}");
        }
    }

    #[test]
    fn ordinary_values_pass_unchanged_and_phone_numbers_become_text() {
        for plain in [
            "",
            "4930123456",
            "A-2026-000001",
            "T-Stück 3/4\" Messing",
            "2.5",
            "6,50",
            "2026-03-02T10:00:00.000Z",
            " =not at the start",
            "'already quoted",
        ] {
            assert_eq!(csv_cell(plain), plain, "{plain:?}");
        }
        // A caller number in E.164 form: kept, shown as text by spreadsheets.
        assert_eq!(csv_cell("+4930123456"), "'+4930123456");
    }

    #[test]
    fn the_export_neutralises_every_column() {
        let order = StoredOrder {
            id: 1,
            order_no: Some("A-2026-000001".into()),
            status: OrderStatus::Confirmed,
            call_id: "call-1".into(),
            caller: "=1+1".into(),
            started_at: "2026-03-02T10:00:00.000Z".into(),
            ended_at: "2026-03-02T10:05:00.000Z".into(),
            total_net_cents: 100,
            items: vec![OrderLine {
                article_no: "@1".into(),
                name: "-x".into(),
                quantity: 1.0,
                unit: "+u".into(),
                unit_price_cents: 100,
            }],
            transcript: String::new(),
        };
        let mut out = Vec::new();
        export_csv(&[order], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        for cell in ["'=1+1", "'@1", "'-x", "'+u"] {
            assert!(row.split(',').any(|c| c == cell), "{cell} in {row}");
        }
    }
}
