//! The real compactor binary, through the local Lambda Runtime API, on a day the real function
//! binaries archived to moto: every line of the day's JSON is once in the Parquet with equal
//! values; DuckDB reads it with Hive partitioning as a consumer would; a rerun changes nothing;
//! a corrupt source stops the compaction naming the object and line, and writes nothing. A day
//! split into tasks on an SQS queue (moto), delivered by the local event source mapping, is
//! published by its last task.

use std::collections::BTreeMap;

use archiver_e2e::duckdb;
use archiver_e2e::lambda::Outcome;
use archiver_e2e::organization::{drain_queue, queue_with_dead_letters, RETRY_AFTER, VISIBILITY};
use archiver_e2e::poller::QueueSource;
use archiver_e2e::stage::{events_dir, local_world, read_json, LocalStage, REGION};
use serde_json::{json, Value as Json};
use session_archiver::history::HistoryKind;
use session_archiver::ServiceId;
use session_compaction::columns::{parse_line, read_parquet, Dataset, Row};
use session_compaction::keys::{marker_key, parquet_prefix, source_prefix, Marker};

const DAY: &str = "2026-11-22";

/// Each service archived twice on `DAY`: its scheduled event, then the same schedule later.
async fn archived_day() -> LocalStage {
    let stage = LocalStage::start(local_world().unwrap()).await.expect("moto and the emulator start");
    for service in ServiceId::ALL {
        let mut function = stage.function(service).await.unwrap();
        let scheduled = read_json(&events_dir().join(service.as_str()).join("scheduled.json")).unwrap();
        for (id, time) in [("run-morning", "2026-11-22T08:00:00Z"), ("run-evening", "2026-11-22T20:00:00Z")] {
            let mut event = scheduled.clone();
            event["id"] = json!(id);
            event["time"] = json!(time);
            let outcome = function.invoke(event).await.unwrap();
            assert!(matches!(outcome, Outcome::Response(_)), "{service} {id}: {outcome:?}");
        }
    }
    stage
}

async fn compact(stage: &LocalStage, event: Json) -> Outcome {
    let mut compactor = stage.compactor(16, &[]).await.unwrap();
    compactor.invoke(event).await.unwrap()
}

fn dataset(service: ServiceId, kind: HistoryKind) -> Dataset {
    Dataset { service, kind }
}

/// Every line of the day's JSON of a dataset, typed, as text sorted.
async fn json_rows(stage: &LocalStage, dataset: &Dataset) -> Vec<String> {
    let columns = dataset.columns();
    let mut rows = Vec::new();
    for key in stage.aws.keys(&source_prefix("history", dataset, DAY)).await {
        for line in stage.aws.read(&key).await.lines {
            rows.push(parse_line(&columns, &Json::Object(line).to_string()).unwrap());
        }
    }
    texts(rows)
}

fn texts(rows: Vec<Row>) -> Vec<String> {
    let mut texts: Vec<String> = rows.into_iter().map(|row| format!("{row:?}")).collect();
    texts.sort();
    texts
}

/// Every object under the Parquet prefix, with its bytes.
async fn compacted(stage: &LocalStage) -> BTreeMap<String, Vec<u8>> {
    let mut objects = BTreeMap::new();
    for key in stage.aws.keys("history/parquet/").await {
        objects.insert(key.clone(), stage.aws.bytes(&key).await);
    }
    objects
}

#[tokio::test]
async fn a_compacted_day_holds_every_line_once_reads_in_duckdb_and_a_rerun_changes_nothing() {
    // GIVEN a day each service archived twice
    let stage = archived_day().await;
    // WHEN the compactor is invoked with the replay of that day for every service
    let event = read_json(&events_dir().join("history-compactor/replay-every-service.json")).unwrap();
    let summary = match compact(&stage, event.clone()).await {
        Outcome::Response(summary) => summary,
        other => panic!("{other:?}"),
    };
    // THEN for every service and dataset (snapshots, changes, runs), the Parquet's rows are the
    // JSON lines, each once
    assert_eq!(summary["services"].as_array().unwrap().len(), 5, "{summary}");
    let copy = std::env::temp_dir().join(format!("compacted-{}", std::process::id()));
    for service in ServiceId::ALL {
        for kind in HistoryKind::ALL {
            let dataset = dataset(service, kind);
            let json = json_rows(&stage, &dataset).await;
            let prefix = parquet_prefix("history", &dataset, DAY);
            let key = format!("{prefix}part-00000.parquet");
            let parquet = read_parquet(&dataset, stage.aws.bytes(&key).await).unwrap();
            assert!(!json.is_empty(), "{service} {kind:?}");
            assert_eq!(texts(parquet), json, "{service} {kind:?}");
            assert!(stage.aws.keys(&marker_key("history", &dataset, DAY)).await.len() == 1, "{service} {kind:?}");
            for source in stage.aws.keys(&source_prefix("history", &dataset, DAY)).await {
                assert_eq!(stage.aws.tags(&source).await, ["session-archiver-compacted=true"], "{source}");
            }
            let local = copy.join(&prefix);
            std::fs::create_dir_all(&local).unwrap();
            std::fs::write(local.join("part-00000.parquet"), stage.aws.bytes(&key).await).unwrap();
        }
    }
    // AND DuckDB reads the snapshots with their `dt` partition, typed, one row per (run, session)
    let snapshots = "read_parquet('{root}/history/parquet/snapshots/*/*/*.parquet', hive_partitioning = true)";
    let answer = duckdb(
        &copy,
        &format!(
            "SELECT count(*), count(DISTINCT (service, account_id, region, run_id, session_id)), min(dt), \
             any_value(typeof(snapshot_at)) FROM {snapshots}"
        ),
    );
    let mut json_snapshots = 0;
    for service in ServiceId::ALL {
        json_snapshots += json_rows(&stage, &dataset(service, HistoryKind::Snapshots)).await.len();
    }
    assert_eq!(answer, format!("{json_snapshots}\t{json_snapshots}\t{DAY}\tTIMESTAMP WITH TIME ZONE"));
    // AND the runs: a row per service and run, each complete, typed
    let runs = "read_parquet('{root}/history/parquet/runs/*/*/*.parquet', hive_partitioning = true)";
    let answer = duckdb(
        &copy,
        &format!(
            "SELECT count(*), count(DISTINCT (service, run_id)), count_if(status = 'complete'), \
             any_value(typeof(finished_at)), any_value(typeof(sessions)) FROM {runs}"
        ),
    );
    assert_eq!(answer, "10\t10\t10\tTIMESTAMP WITH TIME ZONE\tBIGINT");
    // WHEN the day is compacted again
    let before = compacted(&stage).await;
    let rerun = match compact(&stage, event).await {
        Outcome::Response(summary) => summary,
        other => panic!("{other:?}"),
    };
    // THEN nothing changed, and the summary says every dataset was compacted already
    assert_eq!(compacted(&stage).await, before);
    let datasets: Vec<&Json> =
        rerun["services"].as_array().unwrap().iter().flat_map(|s| s["datasets"].as_array().unwrap()).collect();
    assert!(datasets.iter().all(|d| d["already_compacted"] == json!(true)), "{rerun}");
    std::fs::remove_dir_all(&copy).unwrap();
}

#[tokio::test]
async fn a_corrupt_source_stops_the_compaction_naming_the_object_and_line_and_writes_nothing() {
    // GIVEN a compacted day, then one of its change objects damaged on its second line
    let stage = archived_day().await;
    let service = ServiceId::IvsStreamSessions;
    let event = json!({"compact": {"day": DAY, "service": service.as_str()}});
    assert!(matches!(compact(&stage, event.clone()).await, Outcome::Response(_)));
    let prefix = source_prefix("history", &dataset(service, HistoryKind::Changes), DAY);
    let victim = stage.aws.keys(&prefix).await.remove(0);
    let read = stage.aws.read(&victim).await;
    assert!(read.lines.len() >= 2, "{victim}");
    let mut text = String::new();
    for (n, line) in read.lines.iter().enumerate() {
        let line = Json::Object(line.clone()).to_string();
        text.push_str(&if n == 1 { line.replacen("\"session_id\":\"", "\"session_id\":[\"", 1) } else { line });
        text.push('\n');
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, text.as_bytes()).unwrap();
    stage.aws.put_object(&victim, gzip.finish().unwrap()).await;
    let before = compacted(&stage).await;
    // WHEN the day is compacted again
    let outcome = compact(&stage, event).await;
    // THEN the compaction fails for good, naming the object and the line
    match outcome {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "NonRetryable.UnreadableHistory", "{error_message}");
            assert!(error_message.contains(&victim) && error_message.contains("line 2:"), "{error_message}");
        }
        Outcome::Response(summary) => panic!("a corrupt day was compacted: {summary}"),
    }
    // AND the compacted day is as it was, its marker too, and no upload is left open
    assert_eq!(compacted(&stage).await, before);
    assert_eq!(stage.aws.open_uploads().await, 0);
}

/// The day's marker of a dataset, when it stands.
async fn marker(stage: &LocalStage, dataset: &Dataset) -> Option<Marker> {
    let key = marker_key("history", dataset, DAY);
    if stage.aws.keys(&key).await.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(&stage.aws.bytes(&key).await).unwrap())
}

#[tokio::test]
async fn a_day_split_into_tasks_on_the_queue_is_published_by_the_last_and_reads_whole_in_duckdb() {
    // GIVEN a day each service archived twice, and a compactor with a task queue whose parts
    // take one source object each
    let stage = archived_day().await;
    let sqs = aws_sdk_sqs::Client::new(&stage.aws.settings.load().await);
    let queues = queue_with_dead_letters(&sqs, "compaction").await;
    let env = [
        ("COMPACTION_QUEUE_URL", queues.queue.clone()),
        ("COMPACTION_DEAD_LETTER_QUEUE_URL", queues.dead_letters.clone()),
        ("COMPACTION_PART_SOURCE_BYTES", "1".to_owned()),
    ];
    let mut compactor = stage.compactor(16, &env).await.unwrap();
    let service = ServiceId::GameliftStreamSessions;
    let kinds = HistoryKind::ALL;
    // WHEN the day of one service is replayed
    let replay = json!({"compact": {"day": DAY, "service": service.as_str()}});
    let Outcome::Response(summary) = compactor.invoke(replay.clone()).await.unwrap() else { panic!("planning failed") };
    // THEN each dataset is split into a task per source on the queue, and nothing is published yet
    let mut tasks = 0;
    for (kind, outcome) in kinds.iter().zip(summary["services"][0]["datasets"].as_array().unwrap()) {
        let count = stage.aws.keys(&source_prefix("history", &dataset(service, *kind), DAY)).await.len();
        assert!(count >= 1 && outcome["queued_parts"] == json!(count), "{kind:?}: {summary}");
        assert!(marker(&stage, &dataset(service, *kind)).await.is_none(), "{kind:?}");
        tasks += count;
    }
    assert!(tasks >= 3, "the snapshots of two runs are two sources: {summary}");
    // WHEN the queue's tasks are delivered to the compactor, one an invocation
    let queue =
        QueueSource { sqs: &sqs, url: &queues.queue, region: REGION, visibility: VISIBILITY, retry_after: RETRY_AFTER };
    let report = queue.drain_into(&mut compactor).await;
    // THEN every task succeeded, and each dataset is published in a part per source, holding every
    // JSON line once
    assert_eq!((report.invocations, report.handed_back), (tasks, 0), "{:?}", report.responses);
    let copy = std::env::temp_dir().join(format!("compacted-parts-{}", std::process::id()));
    for kind in kinds {
        let dataset = dataset(service, kind);
        let marker = marker(&stage, &dataset).await.expect("the day is published");
        assert_eq!(marker.objects.len(), marker.sources.len(), "{kind:?}");
        let mut rows = Vec::new();
        for object in &marker.objects {
            let bytes = stage.aws.bytes(&object.key).await;
            let local = copy.join(&object.key);
            std::fs::create_dir_all(local.parent().unwrap()).unwrap();
            std::fs::write(&local, &bytes).unwrap();
            rows.extend(read_parquet(&dataset, bytes).unwrap());
        }
        assert_eq!(texts(rows), json_rows(&stage, &dataset).await, "{kind:?}");
    }
    // AND DuckDB reads the parts as one day
    let json_snapshots = json_rows(&stage, &dataset(service, HistoryKind::Snapshots)).await.len();
    let answer = duckdb(
        &copy,
        "SELECT count(*), count(DISTINCT (account_id, region, run_id, session_id)), min(dt) \
         FROM read_parquet('{root}/history/parquet/snapshots/*/*/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(answer, format!("{json_snapshots}\t{json_snapshots}\t{DAY}"));
    std::fs::remove_dir_all(&copy).unwrap();
    // AND the staging is cleared and no task is dead-lettered
    assert!(stage.aws.keys("history/parquet/_staging/").await.is_empty());
    assert!(drain_queue(&sqs, &queues.dead_letters).await.is_empty());

    // WHEN a snapshot object is damaged, and the day replayed and its tasks delivered
    let prefix = source_prefix("history", &dataset(service, HistoryKind::Snapshots), DAY);
    let victim = stage.aws.keys(&prefix).await.remove(0);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, b"{oops\n").unwrap();
    stage.aws.put_object(&victim, gzip.finish().unwrap()).await;
    assert!(matches!(compactor.invoke(replay).await.unwrap(), Outcome::Response(_)));
    queue.drain_into(&mut compactor).await;
    // THEN its task is in the dead-letter queue with the error naming the object and line
    let letters = drain_queue(&sqs, &queues.dead_letters).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (body, attributes) = &letters[0];
    assert_eq!(body["compact_part"]["kind"], json!("snapshots"), "{body}");
    assert_eq!(attributes["ErrorType"], "NonRetryable.UnreadableHistory");
    assert!(
        attributes["ErrorMessage"].contains(&victim) && attributes["ErrorMessage"].contains("line 1"),
        "{attributes:?}"
    );
    // AND the snapshots are not published again: readers take the NDJSON
    assert!(marker(&stage, &dataset(service, HistoryKind::Snapshots)).await.is_none());
}
