//! Orders taken by the phone ordering bot, read from the order database in `DATA_DIR`.
//!
//! Each request opens its own SQLite connection on a blocking thread: a connection is cheap, is
//! not `Sync`, and SQLite's own locking keeps readers and the ordering tool's writes apart.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{error, Api};
use crate::ordering::{OrderFilter, OrderStatus, OrderStore};

#[derive(Debug, Deserialize)]
pub(super) struct OrderQuery {
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    caller: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// RFC 3339 (`2025-01-31T12:00:00Z`) or a date (`2025-01-31`, midnight UTC). With `end_of_day`
/// a date means the midnight after it, so `to=2025-01-31` includes that day.
pub(super) fn parse_time(s: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let d = if end_of_day { d.succ_opt()? } else { d };
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

fn filter(q: &OrderQuery) -> Result<OrderFilter, String> {
    let time = |key: &str, v: &Option<String>, end: bool| match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => parse_time(s, end).map(Some).ok_or_else(|| {
            format!("{key}={s}: use a date (2025-01-31) or an RFC 3339 time (2025-01-31T12:00:00Z)")
        }),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("confirmed") => Some(OrderStatus::Confirmed),
        Some("abandoned") => Some(OrderStatus::Abandoned),
        Some(other) => return Err(format!("status={other}: use confirmed or abandoned")),
    };
    Ok(OrderFilter {
        from: time("from", &q.from, false)?,
        to: time("to", &q.to, true)?,
        status,
        caller: q.caller.clone().filter(|c| !c.is_empty()),
    })
}

pub(super) async fn list(State(api): State<Api>, Query(q): Query<OrderQuery>) -> Response {
    let f = match filter(&q) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let Some(dir) = api.settings.data_dir.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no order database configured",
        );
    };
    let result = tokio::task::spawn_blocking(move || {
        OrderStore::open_in(&dir).and_then(|store| store.list(&f))
    })
    .await;
    match result {
        Ok(Ok(mut orders)) => {
            // Newest first, like the call history.
            orders.reverse();
            let total = orders.len();
            let items: Vec<_> = orders.into_iter().skip(offset).take(limit).collect();
            Json(json!({"items": items, "total": total, "offset": offset, "limit": limit}))
                .into_response()
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading orders failed: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

pub(super) async fn get(State(api): State<Api>, Path(order_no): Path<String>) -> Response {
    let Some(dir) = api.settings.data_dir.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no order database configured",
        );
    };
    let no = order_no.clone();
    let result =
        tokio::task::spawn_blocking(move || OrderStore::open_in(&dir).and_then(|s| s.get(&no)))
            .await;
    match result {
        Ok(Ok(Some(order))) => Json(order).into_response(),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            &format!("no order {order_no} is known"),
        ),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading the order failed: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse() {
        assert_eq!(
            parse_time("2025-01-31", false).unwrap().to_rfc3339(),
            "2025-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2025-01-31", true).unwrap().to_rfc3339(),
            "2025-02-01T00:00:00+00:00"
        );
        assert!(parse_time("2025-01-31T12:00:00+01:00", false).is_some());
        assert!(parse_time("yesterday", false).is_none());
    }
}
