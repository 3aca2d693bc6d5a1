//! The `workflow_wake` job's handler: a run's wait is over, so the run moves on.

use super::runs::{self, Wake as Woken};
use crate::jobs::{self, Handler, Leased, job_kind};
use crate::store::{Conn, Db, StoreError};

/// Ends the job's run's wait. All of it is database work, done in the commit's transaction.
pub struct Wake;

impl Handler for Wake {
    const KIND: &'static str = job_kind::WORKFLOW_WAKE;
    type Ran = ();

    async fn run(&self, _db: &Db, _job: &Leased) -> Result<(), StoreError> {
        Ok(())
    }

    /// Ends the wait if this worker still held the job. A run found not yet due gets a new
    /// job at its wait's end; one no longer waiting (a signal came first) is left as it is.
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
        match runs::wake(tx, &job.subject_id).await? {
            Woken::Moved(m) => Ok(m.enqueued),
            Woken::NotDue(until) => {
                jobs::enqueue(
                    tx,
                    jobs::NewJob {
                        kind: job_kind::WORKFLOW_WAKE,
                        subject_id: &job.subject_id,
                        tenant: &job.tenant,
                        run_at: until,
                        deferred: Some(runs::reason::WORKFLOW_WAIT),
                    },
                )
                .await?;
                Ok(false)
            }
            Woken::NotWaiting => Ok(false),
        }
    }
}
