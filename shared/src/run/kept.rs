//! A run's progress kept between invocations: in its DynamoDB item while it fits, else in an S3
//! object under the state prefix that the item names (see [`crate::table::progress`]).

use tracing::{info, warn};

use super::context::RunInputs;
use crate::error::{Error, Result};
use crate::history::Bucket;
use crate::table::progress::progress_object_key;
use crate::table::{Progress, ProgressObject, SavedProgress, Table};

/// Saves `progress`: the object first when it is too large for its item, then the item, the
/// commit point of the part.
pub(super) async fn save_progress<S, D: Table, O: Bucket>(
    run: RunInputs<'_, S, D, O>,
    progress: &Progress,
) -> Result<()> {
    let encoded = progress.encode()?;
    let saved = if encoded.len() <= run.config.progress_inline_bytes {
        SavedProgress::Inline(encoded)
    } else {
        let key = progress_object_key(&run.config.state_prefix, run.scope, progress);
        let object = ProgressObject::of(key, &encoded);
        info!(
            key = object.key,
            bytes = object.bytes,
            "the run's progress is too large for its item: kept in an object"
        );
        run.bucket.put_object(&object.key, encoded).await?;
        SavedProgress::Object(object)
    };
    run.table.put_progress(run.scope, progress, &saved).await
}

/// The progress of the scope's partial run with these source options, if one is kept. One that
/// can never be read (its object gone, changed or damaged, its encoding unreadable) is given up:
/// its item is deleted and the part fails naming it, so the next invocation starts a new run,
/// which records the lost run's changes again (its manifest never says complete).
pub(super) async fn load_progress<S, D: Table, O: Bucket>(
    run: RunInputs<'_, S, D, O>,
    options: &str,
) -> Result<Option<Progress>> {
    let Some(saved) = run.table.get_progress(run.scope, options).await? else { return Ok(None) };
    let read = match &saved {
        SavedProgress::Inline(bytes) => Progress::decode(bytes),
        SavedProgress::Object(object) => read_object(run.bucket, object).await,
    };
    match read {
        Err(Error::UnreadableItem(detail)) => {
            warn!(error = detail, "giving up the partial run whose progress cannot be read");
            run.table.delete_progress(run.scope, options).await?;
            Err(Error::UnreadableItem(format!(
                "{detail}; the partial run is given up, and the next invocation starts a new one"
            )))
        }
        // Retryable, or a refusal someone must mend (access to the object): kept as it is.
        other => other.map(Some),
    }
}

async fn read_object<O: Bucket>(bucket: &O, object: &ProgressObject) -> Result<Progress> {
    let body = bucket
        .get_object(&object.key)
        .await?
        .ok_or_else(|| Error::UnreadableItem(format!("the run progress object {} is missing", object.key)))?;
    Progress::decode(object.check(&body)?)
}
