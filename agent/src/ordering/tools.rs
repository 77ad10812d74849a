//! The model's ordering tools: definitions (name, description, JSON schema) and handlers.
//!
//! Handlers are plain functions from parsed JSON arguments to a [`ToolOutput`], so the agent can
//! wire them to any transport and every rule is unit-testable. Every answer has `"ok"`; a refusal
//! carries an `"error"` the model can act on (what was wrong and what to do next) instead of a
//! generic failure, because the model has to explain it to a caller on the phone. The
//! definitions are the agent's one [`ToolDefinition`] type, the refusals its one envelope
//! ([`ToolOutput::error`]).
//!
//! The session enforces the conversation's safety rules in code, not only in the prompt: an order
//! can only be confirmed after it was read back (`get_order`) since the last change, and only with
//! `customer_confirmed: true`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::catalog::Catalog;
use super::store::{NewOrder, OrderLine, OrderStore, StoreError};
use super::vocabulary::{Product, Unit};
use crate::realtime::conversation::ToolDefinition;
use crate::tools::ToolOutput;

/// VAT rate applied to net prices for the read-back (19 % in Germany).
pub const VAT_PERCENT: i64 = 19;
/// Largest quantity accepted for one line (a guard against "zweitausend" heard for "zwei").
pub const MAX_QUANTITY: f64 = 10_000.0;

/// The ordering tools, as offered to the model.
pub fn tool_definitions() -> Vec<ToolDefinition> {
    let article = json!({"type": "string", "description": "Article number from search_products, e.g. \"100003\"."});
    let quantity = json!({"type": "number", "exclusiveMinimum": 0, "description": "Quantity in the article's unit; whole numbers for Stück/Packung/Rolle/Dose/Tube, decimals allowed for Meter."});
    vec![
        ToolDefinition::external(
            "search_products",
            "Search the catalog with the caller's words (German, as heard, including sizes like 'dreiviertel Zoll', '22er', 'DN 20' and materials). Returns ranked candidates. If `ambiguous` is true, ask the caller about the attributes in `ask_about` before adding anything.",
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Product description as the caller said it, without the quantity if possible."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "Maximum number of results (default 5)."}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        ),
        ToolDefinition::external(
            "get_product",
            "Details of one article by its article number.",
            json!({
                "type": "object",
                "properties": {"article_no": article},
                "required": ["article_no"],
                "additionalProperties": false
            }),
        ),
        ToolDefinition::external(
            "add_to_order",
            "Add an article to the caller's order. Adding an article already in the order increases its quantity.",
            json!({
                "type": "object",
                "properties": {
                    "article_no": article,
                    "quantity": quantity,
                    "unit": {"type": "string", "description": "Optional: the unit the caller used (Stück, Meter, Packung, Rolle, Dose, Tube). Must match the article's unit."}
                },
                "required": ["article_no", "quantity"],
                "additionalProperties": false
            }),
        ),
        ToolDefinition::external(
            "update_order_item",
            "Change the quantity of an article already in the order.",
            json!({
                "type": "object",
                "properties": {"article_no": article, "quantity": quantity},
                "required": ["article_no", "quantity"],
                "additionalProperties": false
            }),
        ),
        ToolDefinition::external(
            "remove_from_order",
            "Remove an article from the order.",
            json!({
                "type": "object",
                "properties": {"article_no": article},
                "required": ["article_no"],
                "additionalProperties": false
            }),
        ),
        ToolDefinition::external(
            "get_order",
            "The current order with all lines and totals, plus a German read-back text. Call it and read the whole order to the caller before confirming.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
        ToolDefinition::external(
            "confirm_order",
            "Place the order after it was read back with get_order and the caller said yes. Returns the order number to tell the caller.",
            json!({
                "type": "object",
                "properties": {
                    "customer_confirmed": {"type": "boolean", "description": "true only if the caller explicitly agreed to the read-back order."}
                },
                "required": ["customer_confirmed"],
                "additionalProperties": false
            }),
        ),
    ]
}

/// One line of the order being taken.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionItem {
    pub article_no: String,
    pub name: String,
    pub quantity: f64,
    pub unit: Unit,
    pub unit_price_cents: i64,
}

impl SessionItem {
    fn line_total_cents(&self) -> i64 {
        (self.quantity * self.unit_price_cents as f64).round() as i64
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Open,
    Confirmed(String),
    Stored,
}

/// The order of one call.
#[derive(Debug, Clone)]
pub struct OrderSession {
    pub call_id: String,
    pub caller: String,
    pub started_at: DateTime<Utc>,
    items: Vec<SessionItem>,
    state: State,
    read_back: bool,
    transcript: Vec<String>,
}

impl OrderSession {
    pub fn new(
        call_id: impl Into<String>,
        caller: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        OrderSession {
            call_id: call_id.into(),
            caller: caller.into(),
            started_at,
            items: Vec::new(),
            state: State::Open,
            read_back: false,
            transcript: Vec::new(),
        }
    }

    pub fn items(&self) -> &[SessionItem] {
        &self.items
    }

    /// The order number once confirmed.
    pub fn order_no(&self) -> Option<&str> {
        match &self.state {
            State::Confirmed(n) => Some(n),
            _ => None,
        }
    }

    /// Appends one utterance ("Anrufer: …", "Agent: …") to the transcript stored with the order.
    pub fn add_transcript(&mut self, speaker: &str, text: &str) {
        self.transcript.push(format!("{speaker}: {text}"));
    }

    fn to_new_order(&self) -> NewOrder {
        NewOrder {
            call_id: self.call_id.clone(),
            caller: self.caller.clone(),
            started_at: self.started_at,
            items: self
                .items
                .iter()
                .map(|i| OrderLine {
                    article_no: i.article_no.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit: i.unit.as_str().to_string(),
                    unit_price_cents: i.unit_price_cents,
                })
                .collect(),
            transcript: self.transcript.join("\n"),
        }
    }

    /// Call ended: an unconfirmed order is stored as abandoned (with its items and transcript).
    /// Returns the abandoned order's row id, or `None` if it was confirmed or already stored.
    pub fn finish(
        &mut self,
        store: &mut OrderStore,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        if self.state != State::Open {
            return Ok(None);
        }
        let id = store.save_abandoned(&self.to_new_order(), now)?;
        self.state = State::Stored;
        Ok(Some(id))
    }
}

/// What an ordering handler may touch.
pub struct OrderContext<'a> {
    pub catalog: &'a Catalog,
    pub session: &'a mut OrderSession,
    pub store: &'a mut OrderStore,
    pub now: DateTime<Utc>,
}

fn err(msg: impl Into<String>) -> ToolOutput {
    ToolOutput::error(msg)
}

/// Dispatches a model's function call with its parsed arguments (the registry parsed them once
/// and routes only the names [`tool_definitions`] offers).
pub fn handle_tool_call(ctx: &mut OrderContext<'_>, name: &str, args: &Value) -> ToolOutput {
    if !args.is_object() {
        return err("Arguments must be a JSON object matching the tool's schema.");
    }
    match name {
        "search_products" => search_products(ctx.catalog, args),
        "get_product" => get_product(ctx.catalog, args),
        "add_to_order" => add_to_order(ctx.catalog, ctx.session, args),
        "update_order_item" => update_order_item(ctx.session, args),
        "remove_from_order" => remove_from_order(ctx.session, args),
        "get_order" => get_order(ctx.session),
        "confirm_order" => confirm_order(ctx.session, ctx.store, ctx.now, args),
        other => err(format!(
            "Unknown tool `{other}`. Available: search_products, get_product, add_to_order, \
             update_order_item, remove_from_order, get_order, confirm_order."
        )),
    }
}

fn eur(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// Speakable German amount: 1234 → "12,34 Euro".
fn say_eur(cents: i64) -> String {
    format!("{},{:02} Euro", cents / 100, cents % 100)
}

fn say_qty(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{}", q as i64)
    } else {
        format!("{q}").replace('.', ",")
    }
}

/// The product fields the model needs to describe it and to ask follow-up questions.
pub fn product_json(p: &Product) -> Value {
    let mut v = json!({
        "article_no": p.article_no,
        "name": p.name,
        "category": p.category,
        "unit": p.unit.as_str(),
        "price_eur": eur(p.price_cents),
    });
    let m = v.as_object_mut().expect("json! object");
    if !p.dims.is_empty() {
        m.insert("size".into(), json!(p.size_label()));
    }
    for (k, val) in [("material", &p.material), ("connection", &p.connection)] {
        if !val.is_empty() {
            m.insert(k.into(), json!(val));
        }
    }
    if let Some(a) = p.angle {
        m.insert("angle".into(), json!(format!("{a}°")));
    }
    if let Some(pn) = p.pressure {
        m.insert("pressure".into(), json!(format!("PN {pn}")));
    }
    v
}

fn str_arg<'v>(args: &'v Value, key: &str) -> Option<&'v str> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub fn search_products(catalog: &Catalog, args: &Value) -> ToolOutput {
    let Some(query) = str_arg(args, "query") else {
        return err("`query` is required: pass the product as the caller described it.");
    };
    let limit = args
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .clamp(1, 20) as usize;
    let r = catalog.search(query, limit);
    let results: Vec<Value> = r
        .hits
        .iter()
        .map(|h| {
            let mut v = product_json(&catalog.products()[h.index]);
            if !h.sizes_match {
                v["requested_size_available"] = json!(false);
            }
            v
        })
        .collect();
    let ask: serde_json::Map<String, Value> = r
        .distinguishing
        .iter()
        .map(|(k, vals)| (k.to_string(), json!(vals)))
        .collect();
    let hint = if results.is_empty() {
        "Nichts gefunden. Bitten Sie den Anrufer, den Artikel anders zu beschreiben (Art, Größe, Material)."
            .to_string()
    } else if r.hits.first().is_some_and(|h| !h.sizes_match) {
        "Die genannte Größe gibt es für diesen Artikel nicht; nennen Sie die verfügbaren Größen."
            .to_string()
    } else if r.ambiguous {
        let attrs: Vec<String> = r
            .distinguishing
            .iter()
            .take(2)
            .map(|(k, v)| format!("{k}: {}", v.join(" / ")))
            .collect();
        format!("Mehrdeutig: fragen Sie nach {}.", attrs.join("; "))
    } else {
        "Eindeutig: bestätigen Sie Artikel und Menge mit dem Anrufer.".to_string()
    };
    let mut understood = json!({"sizes": r.understood.sizes});
    if let Some((q, u)) = r.understood.quantity {
        understood["quantity"] = json!(q);
        understood["unit"] = json!(u.as_str());
    }
    if !r.understood.unmatched.is_empty() {
        understood["unmatched_words"] = json!(r.understood.unmatched);
    }
    if let Some(no) = &r.understood.unknown_article {
        understood["unknown_article_no"] = json!(no);
    }
    ToolOutput::ok(json!({
        "ok": true,
        "results": results,
        "ambiguous": r.ambiguous,
        "ask_about": ask,
        "understood": understood,
        "hint": hint,
    }))
}

pub fn get_product(catalog: &Catalog, args: &Value) -> ToolOutput {
    let Some(no) = str_arg(args, "article_no") else {
        return err("`article_no` is required.");
    };
    match catalog.get(no) {
        Some(p) => ToolOutput::ok(json!({"ok": true, "product": product_json(p)})),
        None => unknown_article(no),
    }
}

fn unknown_article(no: &str) -> ToolOutput {
    err(format!(
        "Unknown article number `{no}`. Use search_products to find the article and use its article_no."
    ))
}

fn parse_quantity(args: &Value, unit: Unit, article_no: &str) -> Result<f64, ToolOutput> {
    let q = match args.get("quantity") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().replace(',', ".").parse::<f64>().ok(),
        _ => None,
    };
    let Some(q) = q.filter(|q| q.is_finite()) else {
        return Err(err("`quantity` must be a number, e.g. 2 or 2.5."));
    };
    if q <= 0.0 {
        return Err(err(format!(
            "Quantity must be greater than 0 (got {q}). To drop the article use remove_from_order."
        )));
    }
    if q > MAX_QUANTITY {
        return Err(err(format!(
            "Quantity {q} is implausibly large (max {MAX_QUANTITY}). Ask the caller to repeat the quantity."
        )));
    }
    if unit.is_countable() && q.fract() != 0.0 {
        return Err(err(format!(
            "Article {article_no} is sold per {}; quantity must be a whole number (got {q}). Ask the \
             caller how many {} they need.",
            unit.as_str(),
            unit.as_str()
        )));
    }
    if !unit.is_countable() && (q * 100.0).fract().abs() > 1e-9 {
        return Err(err(format!(
            "Quantity {q} has more than two decimals; round to centimetres."
        )));
    }
    Ok(q)
}

fn ensure_open(session: &OrderSession) -> Result<(), ToolOutput> {
    match &session.state {
        State::Open => Ok(()),
        State::Confirmed(no) => Err(err(format!(
            "The order was already confirmed as {no} and cannot be changed in this call. Tell the caller \
             that changes need a new order."
        ))),
        State::Stored => Err(err("The call has ended; the order can no longer be changed.")),
    }
}

pub fn add_to_order(catalog: &Catalog, session: &mut OrderSession, args: &Value) -> ToolOutput {
    if let Err(e) = ensure_open(session) {
        return e;
    }
    let Some(no) = str_arg(args, "article_no") else {
        return err("`article_no` is required; find it with search_products.");
    };
    let Some(p) = catalog.get(no) else {
        return unknown_article(no);
    };
    if let Some(u) = str_arg(args, "unit") {
        match Unit::parse_lenient(u) {
            Some(u) if u == p.unit => {}
            Some(u) => {
                return err(format!(
                "Article {} ({}) is sold per {}, not per {}. Convert the caller's quantity to {} \
                     or ask the caller.",
                p.article_no,
                p.name,
                p.unit.as_str(),
                u.as_str(),
                p.unit.as_str()
            ))
            }
            None => {
                return err(format!(
                    "Unknown unit `{u}`. Article {} is sold per {}.",
                    p.article_no,
                    p.unit.as_str()
                ))
            }
        }
    }
    let q = match parse_quantity(args, p.unit, &p.article_no) {
        Ok(q) => q,
        Err(e) => return e,
    };
    session.read_back = false;
    let (position, quantity, merged) = match session
        .items
        .iter()
        .position(|i| i.article_no == p.article_no)
    {
        Some(i) => {
            let new_q = session.items[i].quantity + q;
            if new_q > MAX_QUANTITY {
                return err(format!(
                    "Total quantity {new_q} would exceed {MAX_QUANTITY}."
                ));
            }
            session.items[i].quantity = new_q;
            (i + 1, new_q, true)
        }
        None => {
            session.items.push(SessionItem {
                article_no: p.article_no.clone(),
                name: p.name.clone(),
                quantity: q,
                unit: p.unit,
                unit_price_cents: p.price_cents,
            });
            (session.items.len(), q, false)
        }
    };
    ToolOutput::ok(json!({
        "ok": true,
        "position": position,
        "article_no": p.article_no,
        "name": p.name,
        "quantity": quantity,
        "unit": p.unit.as_str(),
        "merged_with_existing_line": merged,
        "line_total_eur": eur((quantity * p.price_cents as f64).round() as i64),
        "items_in_order": session.items.len(),
    }))
}

fn find_item(session: &OrderSession, args: &Value) -> Result<usize, ToolOutput> {
    let Some(no) = str_arg(args, "article_no") else {
        return Err(err("`article_no` is required."));
    };
    session.items.iter().position(|i| i.article_no == no).ok_or_else(|| {
        let in_order: Vec<&str> = session.items.iter().map(|i| i.article_no.as_str()).collect();
        err(format!(
            "Article {no} is not in the order. Articles in the order: [{}]. Use get_order to see them.",
            in_order.join(", ")
        ))
    })
}

pub fn update_order_item(session: &mut OrderSession, args: &Value) -> ToolOutput {
    if let Err(e) = ensure_open(session) {
        return e;
    }
    let i = match find_item(session, args) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let item = &session.items[i];
    let q = match parse_quantity(args, item.unit, &item.article_no) {
        Ok(q) => q,
        Err(e) => return e,
    };
    session.read_back = false;
    let item = &mut session.items[i];
    item.quantity = q;
    ToolOutput::ok(json!({
        "ok": true,
        "position": i + 1,
        "article_no": item.article_no,
        "name": item.name,
        "quantity": q,
        "unit": item.unit.as_str(),
        "line_total_eur": eur(item.line_total_cents()),
    }))
}

pub fn remove_from_order(session: &mut OrderSession, args: &Value) -> ToolOutput {
    if let Err(e) = ensure_open(session) {
        return e;
    }
    let i = match find_item(session, args) {
        Ok(i) => i,
        Err(e) => return e,
    };
    session.read_back = false;
    let item = session.items.remove(i);
    ToolOutput::ok(
        json!({"ok": true, "removed": item.article_no, "name": item.name, "items_in_order": session.items.len()}),
    )
}

pub fn get_order(session: &mut OrderSession) -> ToolOutput {
    let mut lines = Vec::new();
    let mut say = Vec::new();
    let mut net = 0;
    for (i, it) in session.items.iter().enumerate() {
        let total = it.line_total_cents();
        net += total;
        lines.push(json!({
            "position": i + 1,
            "article_no": it.article_no,
            "name": it.name,
            "quantity": it.quantity,
            "unit": it.unit.as_str(),
            "unit_price_eur": eur(it.unit_price_cents),
            "line_total_eur": eur(total),
        }));
        say.push(format!(
            "Position {}: {} {} {}, Artikelnummer {}, je {}, zusammen {}.",
            i + 1,
            say_qty(it.quantity),
            it.unit.as_str(),
            it.name,
            it.article_no,
            say_eur(it.unit_price_cents),
            say_eur(total)
        ));
    }
    let vat = (net * VAT_PERCENT + 50) / 100;
    let readback = if session.items.is_empty() {
        "Die Bestellung ist noch leer.".to_string()
    } else {
        format!(
            "{} Summe netto {}, zuzüglich {} % Mehrwertsteuer {}, gesamt {}.",
            say.join(" "),
            say_eur(net),
            VAT_PERCENT,
            say_eur(vat),
            say_eur(net + vat)
        )
    };
    if !session.items.is_empty() {
        session.read_back = true;
    }
    let mut v = json!({
        "ok": true,
        "items": lines,
        "total_net_eur": eur(net),
        "vat_eur": eur(vat),
        "total_gross_eur": eur(net + vat),
        "readback": readback,
        "status": match &session.state { State::Open => "open", State::Confirmed(_) => "confirmed", State::Stored => "ended" },
    });
    if let Some(no) = session.order_no() {
        v["order_no"] = json!(no);
    }
    ToolOutput::ok(v)
}

pub fn confirm_order(
    session: &mut OrderSession,
    store: &mut OrderStore,
    now: DateTime<Utc>,
    args: &Value,
) -> ToolOutput {
    // Confirming twice is answered with the same number: a confirm that outlived the tool
    // timeout may have committed after the model was told it failed, and the model is told to
    // try once more. The repeat must neither fail nor create a second order.
    if let State::Confirmed(no) = &session.state {
        return confirmed_answer(no, true);
    }
    if let Err(e) = ensure_open(session) {
        return e;
    }
    if session.items.is_empty() {
        return err("The order is empty. Add articles with add_to_order first.");
    }
    if args.get("customer_confirmed").and_then(Value::as_bool) != Some(true) {
        return err(
            "Only confirm after the caller explicitly said yes to the read-back order \
                    (customer_confirmed: true).",
        );
    }
    if !session.read_back {
        return err(
            "The order changed since it was last read back. Call get_order, read the whole \
                    order to the caller, and confirm only after they agree.",
        );
    }
    match store.confirm(&session.to_new_order(), now) {
        Ok(no) => {
            let answer = confirmed_answer(&no, false);
            session.state = State::Confirmed(no);
            answer
        }
        Err(e) => {
            tracing::error!(call_id = %session.call_id, error = %e, "storing confirmed order failed");
            err("The order could not be saved due to a technical problem. Apologise, do not give an \
                 order number, and tell the caller that a colleague will call back.")
        }
    }
}

fn confirmed_answer(no: &str, already_confirmed: bool) -> ToolOutput {
    ToolOutput::ok(json!({
        "ok": true,
        "order_no": no,
        "already_confirmed": already_confirmed,
        "say": format!("Ihre Bestellung ist aufgenommen. Ihre Bestellnummer lautet {no}."),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn catalog() -> Catalog {
        let csv = "article_no,name,category,size,material,connection,pressure,angle,unit,price_eur,synonyms\n\
            1,\"T-Stück 3/4\"\" Messing\",T-Stück,3/4 Zoll,Messing,Gewinde,,,Stück,4.19,\n\
            4,Kupferrohr 15 mm,Kupferrohr,15 mm,Kupfer,Pressen,,,Meter,6.50,\n";
        Catalog::from_csv(Path::new("t.csv"), csv).unwrap()
    }

    fn store() -> (OrderStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ordering-tools-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        (OrderStore::open_in(&dir).unwrap(), dir)
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    use std::path::PathBuf;

    #[test]
    fn full_order_flow_enforces_readback_and_confirmation() {
        let c = catalog();
        let (mut st, dir) = store();
        let mut s = OrderSession::new("call-1", "+4930123", Utc::now());
        let mut ctx = OrderContext {
            catalog: &c,
            session: &mut s,
            store: &mut st,
            now: Utc::now(),
        };
        let r = handle_tool_call(
            &mut ctx,
            "add_to_order",
            &json!({"article_no":"1","quantity":2}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let r = handle_tool_call(
            &mut ctx,
            "add_to_order",
            &json!({"article_no":"4","quantity":2.5,"unit":"m"}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let r = handle_tool_call(
            &mut ctx,
            "confirm_order",
            &json!({"customer_confirmed":true}),
        );
        assert_eq!(r["ok"], false);
        assert!(r["error"].as_str().unwrap().contains("get_order"));
        let r = handle_tool_call(&mut ctx, "get_order", &json!({}));
        assert_eq!(r["total_net_eur"], 24.63); // 2*4.19 + 2.5*6.50 = 8.38 + 16.25
        assert!(r["readback"]
            .as_str()
            .unwrap()
            .contains("2,5 Meter Kupferrohr 15 mm"));
        let r = handle_tool_call(
            &mut ctx,
            "confirm_order",
            &json!({"customer_confirmed":false}),
        );
        assert_eq!(r["ok"], false);
        let r = handle_tool_call(
            &mut ctx,
            "confirm_order",
            &json!({"customer_confirmed":true}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let no = r["order_no"].as_str().unwrap().to_string();
        assert!(no.starts_with("A-") && no.ends_with("-000001"), "{no}");
        assert_eq!(r["already_confirmed"], false);
        // A repeated confirm (e.g. after a tool timeout) answers with the same number and
        // stores nothing new.
        let r = handle_tool_call(
            &mut ctx,
            "confirm_order",
            &json!({"customer_confirmed":true}),
        );
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["order_no"], no.as_str());
        assert_eq!(r["already_confirmed"], true);
        assert_eq!(
            ctx.store
                .list(&crate::ordering::OrderFilter::default())
                .unwrap()
                .len(),
            1
        );
        let r = handle_tool_call(
            &mut ctx,
            "add_to_order",
            &json!({"article_no":"1","quantity":1}),
        );
        assert!(r["error"].as_str().unwrap().contains(&no));
        assert_eq!(s.finish(&mut st, Utc::now()).unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn invalid_inputs_get_actionable_errors() {
        let c = catalog();
        let mut s = OrderSession::new("call-2", "", Utc::now());
        let e = |v: ToolOutput| v["error"].as_str().unwrap_or_default().to_string();
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"999","quantity":1})
        ))
        .contains("search_products"));
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"1","quantity":0})
        ))
        .contains("greater than 0"));
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"1","quantity":-3})
        ))
        .contains("greater than 0"));
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"1","quantity":1.5})
        ))
        .contains("whole number"));
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"4","quantity":3,"unit":"Stück"})
        ))
        .contains("per Meter"));
        assert!(e(add_to_order(
            &c,
            &mut s,
            &json!({"article_no":"1","quantity":"zwei"})
        ))
        .contains("number"));
        assert!(e(update_order_item(
            &mut s,
            &json!({"article_no":"1","quantity":3})
        ))
        .contains("not in the order"));
        assert!(s.items().is_empty());
        let r = add_to_order(&c, &mut s, &json!({"article_no":"1","quantity":"2"}));
        assert_eq!(r["ok"], true);
        let r = add_to_order(&c, &mut s, &json!({"article_no":"1","quantity":1}));
        assert_eq!(r["merged_with_existing_line"], true);
        assert_eq!(s.items()[0].quantity, 3.0);
        assert_eq!(
            update_order_item(&mut s, &json!({"article_no":"1","quantity":5}))["ok"],
            true
        );
        assert_eq!(s.items()[0].quantity, 5.0);
        assert_eq!(
            remove_from_order(&mut s, &json!({"article_no":"1"}))["ok"],
            true
        );
        assert!(s.items().is_empty());
    }

    #[test]
    fn search_tool_reports_ambiguity_and_missing_size() {
        let c = catalog();
        let r = search_products(&c, &json!({"query": "T-Stück zwei Zoll"}));
        assert_eq!(r["results"][0]["article_no"], "1");
        assert_eq!(r["results"][0]["requested_size_available"], false);
        assert!(r["hint"].as_str().unwrap().contains("Größe"));
        assert_eq!(search_products(&c, &json!({}))["ok"], false);
    }

    #[test]
    fn definitions_are_valid_function_tools() {
        let defs = tool_definitions();
        assert_eq!(defs.len(), 7);
        // As the session offers them to the model.
        let config = crate::realtime::conversation::ConversationConfig {
            tools: defs,
            ..Default::default()
        };
        let session = serde_json::to_value(config.session()).unwrap();
        let tools = session["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 7);
        for j in tools {
            assert_eq!(j["type"], "function");
            assert_eq!(j["parameters"]["type"], "object");
        }
    }
}
