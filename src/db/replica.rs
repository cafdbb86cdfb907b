//! The read replica's lag, as this server sees it, sampled for `/metrics`.

use std::{sync::Arc, time::Duration};

use diesel::sql_types::{Double, Nullable};
use diesel_async::RunQueryDsl;

use super::DbPool;
use crate::metrics::Metrics;

/// How often the lag is sampled.
pub const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(diesel::QueryableByName)]
struct Lag {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

/// 0 when the replica has replayed every bit of WAL it has received (caught up, or not a standby
/// at all), else the age of the last transaction it replayed: how old the newest data a read can
/// see is, while WAL waits to be replayed. A replica cut off from its primary receives nothing
/// and so reads 0: the primary's `pg_stat_replication` is what shows that.
const LAG: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN 0 \
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
    ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) \
    END::float8 AS seconds";

/// Samples the replica's lag on `pool` (one connection of its own, so a busy read pool does not
/// hold up the gauge) every `period`, into `metrics`. A failed sample (the replica cannot be
/// reached) is recorded as unknown and logged once until the replica answers again.
pub async fn sample_lag_every(pool: DbPool, metrics: Arc<Metrics>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    loop {
        ticks.tick().await;
        match sample(&pool).await {
            Ok(seconds) => {
                if !was_up {
                    tracing::info!("the read replica answers again");
                }
                was_up = true;
                metrics.replica_lag(Some(seconds.unwrap_or(0.0)));
            }
            Err(err) => {
                if was_up {
                    tracing::warn!(error = %err, "the read replica's lag cannot be sampled");
                }
                was_up = false;
                metrics.replica_lag(None);
            }
        }
    }
}

async fn sample(pool: &DbPool) -> Result<Option<f64>, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    pool.run(&mut conn, async |c| {
        diesel::sql_query(LAG).get_result::<Lag>(c).await
    })
    .await
    .map(|lag| lag.seconds)
    .map_err(|e| e.to_string())
}
