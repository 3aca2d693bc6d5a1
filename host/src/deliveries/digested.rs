//! A digest bucket's members: when its digest is planned, the deliveries held in it become
//! `digested` (sent inside the digest), in the emission's transaction.

use super::vocab::Status;
use crate::store::{Conn, StoreError};

/// Moves every delivery still held in bucket `bucket_id` to `digested`, with the digests'
/// `reason` and `detail`. Returns how many moved.
pub async fn mark_bucket_digested(
    conn: &mut Conn,
    bucket_id: &str,
    reason: &str,
    detail: &str,
    now: &str,
) -> Result<u64, StoreError> {
    let moved = sqlx::query(
        "UPDATE deliveries SET status = $5, status_reason = $1, status_detail = $2, updated_at = $3
         WHERE digest_bucket_id = $4 AND status = $6",
    )
    .bind(reason)
    .bind(detail)
    .bind(now)
    .bind(bucket_id)
    .bind(Status::Digested.as_str())
    .bind(Status::Held.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(moved.rows_affected())
}
