//! S3 keys of the history:
//! `<prefix>/<kind>/<service>/dt=YYYY-MM-DD/<account>.<region>.<run_id>.jsonl.gz`, and
//! `….<run_id>.part-NNNN.jsonl.gz` for the later parts of a run that spanned invocations. The
//! account and region make a key unique across the scopes of one event (an organization's runs
//! share the planner's event); the run id keeps it the same when an event is delivered again.

use crate::model::{RunId, Scope, Timestamp};

/// The datasets of the history: two of sessions, and the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryKind {
    /// Every session a run saw.
    Snapshots,
    /// Sessions a run saw open, change or end.
    Changes,
    /// One line per scope and run: how it went (see [`super::runs`]).
    Runs,
}

impl HistoryKind {
    /// Every dataset, as the compaction takes them.
    pub const ALL: [HistoryKind; 3] = [HistoryKind::Snapshots, HistoryKind::Changes, HistoryKind::Runs];
    /// The datasets of sessions, whose lines a run writes to its objects (or its batch's pool).
    pub const SESSIONS: [HistoryKind; 2] = [HistoryKind::Snapshots, HistoryKind::Changes];

    /// The kind a name (`snapshots`, `changes`) says.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Snapshots => "snapshots",
            HistoryKind::Changes => "changes",
            HistoryKind::Runs => "runs",
        }
    }
}

/// The key of one history object of `scope`: part 0 of a run, or a later part when the run spanned
/// invocations. The `dt` partition is the UTC day of the run's event, the same for every part.
pub fn object_key(
    prefix: &str,
    kind: HistoryKind,
    scope: &Scope,
    event_time: &Timestamp,
    run: &RunId,
    part: u32,
) -> String {
    let day = event_time.day();
    let part = if part == 0 { String::new() } else { format!(".part-{part:04}") };
    let Scope { service, account_id, region } = scope;
    under_prefix(prefix, &format!("{}/{service}/dt={day}/{account_id}.{region}.{run}{part}.jsonl.gz", kind.as_str()))
}

/// `<prefix>/<tail>`, the prefix's own slashes trimmed; `<tail>` when there is no prefix.
pub fn under_prefix(prefix: &str, tail: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        tail.to_owned()
    } else {
        format!("{prefix}/{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceId;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn scope(service: ServiceId) -> Scope {
        Scope { service, account_id: "123456789012".into(), region: "eu-west-1".into() }
    }

    #[test]
    fn a_kind_is_named_and_parsed_back() {
        for kind in HistoryKind::ALL {
            assert_eq!(HistoryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HistoryKind::parse("sessions"), None);
        assert!(!HistoryKind::SESSIONS.contains(&HistoryKind::Runs));
    }

    #[test]
    fn keys_are_hive_partitioned_by_service_and_day() {
        let run = RunId::parse("7bf73129-1428-4cd3-a780-95db273d1602").unwrap();
        assert_eq!(
            object_key(
                "history",
                HistoryKind::Snapshots,
                &scope(ServiceId::IvsStreamSessions),
                &at("2026-11-22T23:59:59Z"),
                &run,
                0
            ),
            "history/snapshots/ivs-stream-sessions/dt=2026-11-22/123456789012.eu-west-1.7bf73129-1428-4cd3-a780-95db273d1602.jsonl.gz"
        );
        assert_eq!(
            object_key(
                "/a/b/",
                HistoryKind::Changes,
                &scope(ServiceId::ChimeProxySessions),
                &at("2026-01-01T00:00:00Z"),
                &run,
                0
            ),
            "a/b/changes/chime-proxy-sessions/dt=2026-01-01/123456789012.eu-west-1.7bf73129-1428-4cd3-a780-95db273d1602.jsonl.gz"
        );
        assert_eq!(
            object_key(
                "",
                HistoryKind::Changes,
                &scope(ServiceId::GameliftStreamSessions),
                &at("2026-01-01T00:00:00Z"),
                &run,
                3
            ),
            "changes/gamelift-stream-sessions/dt=2026-01-01/123456789012.eu-west-1.7bf73129-1428-4cd3-a780-95db273d1602.part-0003.jsonl.gz"
        );
    }

    #[test]
    fn the_same_event_gives_the_same_key() {
        let key = |id: &str| {
            let run = RunId::parse(id).unwrap();
            object_key(
                "h",
                HistoryKind::Snapshots,
                &scope(ServiceId::WorkspacesPoolSessions),
                &at("2026-03-01T10:00:00Z"),
                &run,
                0,
            )
        };
        assert_eq!(key("evt-1"), key("evt-1"));
        assert_ne!(key("evt-1"), key("evt-2"));
    }

    #[test]
    fn the_scopes_of_one_event_write_apart() {
        let run = RunId::parse("evt-1").unwrap();
        let key = |account_id: &str, region: &str| {
            let scope =
                Scope { account_id: account_id.into(), region: region.into(), ..scope(ServiceId::IvsStreamSessions) };
            object_key("h", HistoryKind::Changes, &scope, &at("2026-03-01T10:00:00Z"), &run, 0)
        };
        let keys =
            [key("111111111111", "eu-west-1"), key("111111111111", "us-east-1"), key("222222222222", "eu-west-1")];
        assert_eq!(keys.iter().collect::<std::collections::HashSet<_>>().len(), 3, "{keys:?}");
        assert!(keys[1].ends_with("/dt=2026-03-01/111111111111.us-east-1.evt-1.jsonl.gz"), "{}", keys[1]);
    }

    #[test]
    fn run_ids_that_would_break_a_key_are_refused() {
        for bad in ["", "a/b", "../x", ".hidden", "space here", "x.part-0001", &"x".repeat(129)] {
            let err = RunId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("must be 1 to 128 characters"), "{bad}: {err}");
        }
        assert!(RunId::parse("replay-2026-11-22.1_a").is_ok());
    }
}
