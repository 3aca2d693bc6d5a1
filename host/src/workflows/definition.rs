//! A workflow as a notifier declares it (WIT 0.4.0 `describe().workflow`; the types and their
//! load-time checks are the plugin contract's, `crate::plugins::workflow`), and its published
//! versions.
//!
//! The definition is stored with every run it starts (`workflow_runs.definition`), so a run
//! follows the steps it began with even if the notifier later declares others.

pub use crate::plugins::workflow::{
    Branch, MAX_SIGNAL_NAME, MAX_SIGNALS, MAX_STEPS, MAX_WAIT_MS, PublishError, Step, StepOutcome,
    Target, Wait, Workflow,
};

/// Publishes `workflow` under its `(key, version)`, or confirms that this version was
/// published with the same content. A run stores the definition it starts with, so two
/// definitions under one version would make runs of "the same" workflow behave differently
/// and their transitions unreadable against the declaration: a published version is
/// immutable, as a digest rule's is, and a change is a new version. Insert-or-nothing, then
/// compare, so two triggers racing to publish the same version cannot both win.
pub(crate) async fn publish(
    conn: &mut crate::store::Conn,
    workflow: &Workflow,
    notifier_plugin: &str,
) -> Result<(), PublishError> {
    use crate::store::{self, StoreError};
    let json = serde_json::to_string(workflow)
        .map_err(|e| StoreError::Corrupt(format!("workflow definition: {e}")))?;
    let inserted = sqlx::query(
        "INSERT INTO workflow_versions (workflow_key, workflow_version, definition, notifier_plugin, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workflow_key, workflow_version) DO NOTHING",
    )
    .bind(&workflow.key)
    .bind(&workflow.version)
    .bind(&json)
    .bind(notifier_plugin)
    .bind(store::time_text(store::now()))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?
    .rows_affected()
        == 1;
    if inserted {
        tracing::info!(workflow = %workflow.key, version = %workflow.version, notifier = notifier_plugin, "workflow version published");
        return Ok(());
    }
    let (stored, first_by): (String, String) = sqlx::query_as(
        "SELECT definition, notifier_plugin FROM workflow_versions
         WHERE workflow_key = $1 AND workflow_version = $2",
    )
    .bind(&workflow.key)
    .bind(&workflow.version)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    same_as_published(workflow, &json, &stored, first_by, notifier_plugin)
}

/// Whether `workflow` may be declared by a plugin loaded at runtime: its `(key, version)` is
/// unpublished, or published with this content. Reads only: what publishes a version is the
/// first run that uses it.
pub(crate) async fn check_published(
    db: &crate::store::Db,
    workflow: &Workflow,
    notifier_plugin: &str,
) -> Result<(), PublishError> {
    use crate::store::StoreError;
    let json = serde_json::to_string(workflow)
        .map_err(|e| StoreError::Corrupt(format!("workflow definition: {e}")))?;
    let stored: Option<(String, String)> = sqlx::query_as(
        "SELECT definition, notifier_plugin FROM workflow_versions
         WHERE workflow_key = $1 AND workflow_version = $2",
    )
    .bind(&workflow.key)
    .bind(&workflow.version)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)?;
    match stored {
        None => Ok(()),
        Some((stored, first_by)) => {
            same_as_published(workflow, &json, &stored, first_by, notifier_plugin)
        }
    }
}

/// Compares a declaration (`json` is its serialization) with the published one.
fn same_as_published(
    workflow: &Workflow,
    json: &str,
    stored: &str,
    first_by: String,
    notifier_plugin: &str,
) -> Result<(), PublishError> {
    if stored == json {
        return Ok(());
    }
    let published: Workflow = serde_json::from_str(stored).map_err(|e| {
        crate::store::StoreError::Corrupt(format!(
            "published workflow `{}` version {}: {e}",
            workflow.key, workflow.version
        ))
    })?;
    match differences(&published, workflow) {
        None => Ok(()),
        Some(differences) => {
            tracing::warn!(workflow = %workflow.key, version = %workflow.version, notifier = notifier_plugin, %differences, "changed workflow version refused");
            Err(PublishError::Changed {
                key: workflow.key.clone(),
                version: workflow.version.clone(),
                differences,
                first_by,
            })
        }
    }
}

/// How `declared` differs from `published` (same key and version), step by step; `None`
/// when they are the same.
fn differences(published: &Workflow, declared: &Workflow) -> Option<String> {
    if published == declared {
        return None;
    }
    let mut out = Vec::new();
    if published.steps.len() != declared.steps.len() {
        out.push(format!(
            "{} steps, published with {}",
            declared.steps.len(),
            published.steps.len()
        ));
    }
    for (i, (p, d)) in published.steps.iter().zip(&declared.steps).enumerate() {
        if p != d {
            out.push(format!("steps[{i}] (`{}`) differs", d.key));
        }
    }
    if out.is_empty() {
        out.push("the steps differ".into());
    }
    Some(out.join(", "))
}
