//! The `digest_emit` job's handler: a bucket's window ended, so its digest is emitted.

use super::BucketError;
use super::buckets::{self, Emission};
use crate::jobs::{self, Handler, Leased, job_kind};
use crate::store::{self, Conn, Db, StoreError};

/// Emits the job's bucket. All of it is database work, done in the commit's transaction.
pub struct Emit;

impl Handler for Emit {
    const KIND: &'static str = job_kind::DIGEST_EMIT;
    type Ran = ();

    async fn run(&self, _db: &Db, _job: &Leased) -> Result<(), StoreError> {
        Ok(())
    }

    /// Emits the bucket if this worker still held its job. A bucket found not yet due (a clock
    /// ahead of this one wrote the job) gets a new job at its window's end; one already
    /// emitted is left as it is.
    async fn commit(
        &self,
        tx: &mut Conn,
        job: &Leased,
        _ran: &(),
        held: bool,
    ) -> Result<bool, StoreError> {
        if !held {
            return Ok(false);
        }
        let emission = match buckets::emit_in(tx, &job.subject_id, store::now(), None).await {
            Ok(e) => e,
            Err(BucketError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "digest job dropped");
                return Ok(false);
            }
        };
        match emission {
            Emission::Emitted { .. } => Ok(true),
            Emission::NotDue { window_end, .. } => {
                jobs::enqueue(
                    tx,
                    jobs::NewJob {
                        kind: job_kind::DIGEST_EMIT,
                        subject_id: &job.subject_id,
                        tenant: &job.tenant,
                        run_at: store::parse_time(&window_end)?,
                        deferred: Some("digest_window"),
                    },
                )
                .await?;
                Ok(false)
            }
            Emission::AlreadyEmitted { .. } | Emission::Empty { .. } => Ok(false),
        }
    }
}
