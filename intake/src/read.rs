//! remote_read: each query's matchers become one `tagquery` over the series table,
//! then one scan of the points table names those series (`series_id = ANY(...)`,
//! which bidim answers through each chunk's (key, time) index) and the time range.

use crate::labels::{labels_from_tagset, matchers_to_tagquery, pinned_metric};
use crate::pgtypes::{Millis, Tagset};
use crate::proto::{Query, QueryResult, Sample, TimeSeries};
use crate::store::{pg_message, Names};
use deadpool_postgres::Pool;
use futures_util::TryStreamExt;

/// Why a read failed: 400 for a query we cannot run, 413 for too many samples, 503
/// when the database is unavailable.
#[derive(Debug)]
pub enum ReadError {
    Bad(String),
    TooLarge(String),
    Unavailable(String),
}

pub async fn run_query(
    pool: &Pool,
    names: &Names,
    q: &Query,
    budget: &mut usize,
) -> Result<QueryResult, ReadError> {
    let tq = matchers_to_tagquery(&q.matchers).map_err(ReadError::Bad)?;
    if q.end_timestamp_ms < q.start_timestamp_ms {
        return Ok(QueryResult::default());
    }
    let start = Millis(q.start_timestamp_ms.max(crate::pgtypes::MIN_MS));
    let end = Millis(q.end_timestamp_ms.min(crate::pgtypes::MAX_MS - 1));
    let client = pool
        .get()
        .await
        .map_err(|e| ReadError::Unavailable(e.to_string()))?;
    let ext = &names.ext;
    let by_metric = pinned_metric(&q.matchers);
    let sql = format!(
        "SELECT id, labels FROM {} WHERE labels OPERATOR({ext}.@@) $1::pg_catalog.text::{ext}.tagquery{}
          ORDER BY id",
        names.series,
        if by_metric.is_some() { " AND metric = $2" } else { "" }
    );
    let series = match by_metric {
        Some(m) => client.query(&sql, &[&tq, &m]).await,
        None => client.query(&sql, &[&tq]).await,
    }
    .map_err(|e| sql_error(&e))?;
    if series.is_empty() {
        return Ok(QueryResult::default());
    }
    let ids: Vec<i64> = series.iter().map(|r| r.get(0)).collect();
    let mut out: Vec<TimeSeries> = Vec::with_capacity(series.len());
    for r in &series {
        let t: Tagset = r.get(1);
        out.push(TimeSeries {
            labels: labels_from_tagset(&t.0).map_err(ReadError::Unavailable)?,
            ..Default::default()
        });
    }
    let index: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let stmt = format!(
        "SELECT series_id, ts, value FROM {} WHERE series_id = ANY($1) AND ts >= $2 AND ts <= $3
          ORDER BY series_id, ts",
        names.points
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&ids, &start, &end];
    let rows = client
        .query_raw(&stmt, params)
        .await
        .map_err(|e| sql_error(&e))?;
    futures_util::pin_mut!(rows);
    while let Some(r) = rows.try_next().await.map_err(|e| sql_error(&e))? {
        let id: i64 = r.get(0);
        let ts: Millis = r.get(1);
        let value: f64 = r.get(2);
        let s = &mut out[index[&id]].samples;
        // Two samples of one series at one timestamp (a sender resent it): keep one.
        if s.last().is_some_and(|l: &Sample| l.timestamp == ts.0) {
            continue;
        }
        if *budget == 0 {
            return Err(ReadError::TooLarge(
                "the query selects more samples than --max-read-samples".into(),
            ));
        }
        *budget -= 1;
        s.push(Sample {
            value,
            timestamp: ts.0,
        });
    }
    // Series without samples in the range are not returned (as Prometheus's own read).
    out.retain(|s| !s.samples.is_empty());
    out.sort_by(|a, b| {
        a.labels
            .iter()
            .map(|l| (&l.name, &l.value))
            .cmp(b.labels.iter().map(|l| (&l.name, &l.value)))
    });
    Ok(QueryResult { timeseries: out })
}

fn sql_error(e: &tokio_postgres::Error) -> ReadError {
    match e.code() {
        Some(c) if c.code().starts_with("22") || c.code().starts_with("42") => {
            ReadError::Bad(pg_message(e))
        }
        _ => ReadError::Unavailable(pg_message(e)),
    }
}
