//! `bench trigger`: triggers/s, engine vs raw SQL writing the same rows.

use super::raw::{raw_pool, raw_trigger, raw_triggers};
use super::{Options, Place, Row, count, o_size_offset, payload, rate, row};
use anyhow::{Result, ensure};
use belfry::{Engine, TriggerRequest};
use std::sync::Arc;
use std::time::Instant;

/// `order-shipped` triggers per second on `engine`, in-process, from `callers` tasks.
pub(super) async fn engine_trigger_rate(
    engine: &Engine,
    total: usize,
    callers: usize,
) -> Result<f64> {
    let e = engine.clone();
    rate(total, callers, move |i| {
        let e = e.clone();
        async move {
            e.trigger(&TriggerRequest::new("order-shipped", payload(i)))
                .await?;
            Ok(())
        }
    })
    .await
}

pub(super) async fn bench_trigger(o: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for callers in [1usize, 4] {
        let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.repetitions {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            engine_rates.push(engine_trigger_rate(&engine, o.size, callers).await?);
            let raw = Arc::new(raw_pool(&place).await?);
            let r = raw.clone();
            raw_rates.push(
                rate(o.size, callers, move |i| {
                    let r = r.clone();
                    async move { raw_trigger(&r, o_size_offset(i)).await }
                })
                .await?,
            );
            // Check: each side wrote one event, delivery and job per call.
            for table in ["events", "deliveries", "jobs"] {
                let n = count(&engine, &format!("SELECT COUNT(*) FROM {table}")).await?;
                ensure!(
                    n == 2 * o.size as i64,
                    "trigger check: {n} {table}, expected {}",
                    2 * o.size
                );
            }
            place.drop_schema().await;
        }
        rows.push(row(
            "trigger",
            &format!("{callers} caller(s)"),
            "triggers/s",
            &engine_rates,
            Some(&raw_rates),
            "≥ 0.8× raw",
        ));
    }
    // Bulk: `trigger_many` of 100 from one caller; raw writes 100 triggers' rows per transaction.
    const BULK: usize = 100;
    let batches = o.size.div_ceil(BULK);
    let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for _ in 0..o.repetitions {
        let place = Place::new(o).await?;
        let engine = place.engine().await?;
        let start = Instant::now();
        for b in 0..batches {
            let reqs: Vec<TriggerRequest> = (b * BULK..(b + 1) * BULK)
                .map(|i| TriggerRequest::new("order-shipped", payload(i)))
                .collect();
            engine.trigger_many(&reqs).await?;
        }
        engine_rates.push((batches * BULK) as f64 / start.elapsed().as_secs_f64());
        let raw = raw_pool(&place).await?;
        let start = Instant::now();
        for b in 0..batches {
            raw_triggers(&raw, o_size_offset(b * BULK), BULK).await?;
        }
        raw_rates.push((batches * BULK) as f64 / start.elapsed().as_secs_f64());
        let n = count(&engine, "SELECT COUNT(*) FROM jobs").await?;
        ensure!(
            n == 2 * (batches * BULK) as i64,
            "bulk trigger check: {n} jobs, expected {}",
            2 * batches * BULK
        );
        place.drop_schema().await;
    }
    rows.push(row(
        "trigger",
        "trigger_many 100",
        "triggers/s",
        &engine_rates,
        Some(&raw_rates),
        "≥ 0.8× raw",
    ));
    Ok(rows)
}
