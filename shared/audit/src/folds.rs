//! The answers that sum an organization's month, folded a line at a time as the history streams
//! by ([`crate::Fold`]): what they hold grows with the sessions, the scopes and the runs of one
//! day, not with the lines of the range. Pure, no I/O.
//!
//! A run's lines are all in its day's partition, so what a fold gathers per run (its time, the
//! sessions it saw active) is complete at the partition's end, and summed then.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use std::hash::{Hash, Hasher};

use session_archiver::services::is_active_status;

use crate::record::{AuditLine, RunRecord, ScopeKey};
use crate::Fold;

/// Whether a line saw its session active at `at`: a live status, started by then, not ended.
pub fn active_then(line: &AuditLine, at: i64) -> bool {
    is_active_status(line.status.as_deref())
        && line.started_at.is_none_or(|s| s <= at)
        && line.ended_at.is_none_or(|e| e > at)
}

/// A session's id as a run's distinct count needs it: 8 bytes, not its text.
fn session_hash(line: &AuditLine) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&line.service, &line.session_id).hash(&mut hasher);
    hasher.finish()
}

/// Per service, each run's time and the sessions it saw active: the concurrency plot's points.
pub type Series = BTreeMap<String, Vec<(i64, u64)>>;

/// One run of a service, while its day is read: its first observation, its active lines.
#[derive(Default)]
struct OpenRun {
    first_seen: i64,
    active: Vec<(u64, Option<i64>, Option<i64>)>,
}

/// Concurrent (active) sessions per service at each run: a run's time is its first observation,
/// a session counts once a run when that run saw it active at that time.
#[derive(Default)]
pub struct ConcurrencyFold {
    from: i64,
    to: i64,
    open: HashMap<(String, String), OpenRun>,
    points: BTreeMap<String, Vec<(i64, String, u64)>>,
}

impl ConcurrencyFold {
    pub fn new(from: i64, to: i64) -> Self {
        ConcurrencyFold { from, to, ..Self::default() }
    }

    /// The points per service, in time order.
    pub fn finish(mut self) -> Series {
        self.end_partition();
        let mut series = BTreeMap::new();
        for (service, mut points) in self.points {
            points.sort();
            series.insert(service, points.into_iter().map(|(at, _, count)| (at, count)).collect());
        }
        series
    }
}

impl Fold for ConcurrencyFold {
    fn add(&mut self, line: AuditLine) {
        if line.change.is_some() {
            return;
        }
        let run = self
            .open
            .entry((line.service.clone(), line.run_id.clone()))
            .or_insert_with(|| OpenRun { first_seen: line.seen_at, active: Vec::new() });
        run.first_seen = run.first_seen.min(line.seen_at);
        if is_active_status(line.status.as_deref()) {
            run.active.push((session_hash(&line), line.started_at, line.ended_at));
        }
    }

    fn end_partition(&mut self) {
        for ((service, run_id), run) in self.open.drain() {
            let at = run.first_seen;
            if !(self.from..=self.to).contains(&at) {
                continue;
            }
            let active: HashSet<u64> = run
                .active
                .iter()
                .filter(|(_, started, ended)| started.is_none_or(|s| s <= at) && ended.is_none_or(|e| e > at))
                .map(|(session, _, _)| *session)
                .collect();
            self.points.entry(service).or_default().push((at, run_id, active.len() as u64));
        }
    }
}

/// A session's start and end, as far as the history knows them.
pub type KnownTimes = (Option<i64>, Option<i64>);

/// Sessions started and ended, their durations, and the runs' concurrency, over `[from, to]`.
pub struct SummaryFold {
    from: i64,
    to: i64,
    /// Each session once, with the times the history knows.
    known: BTreeMap<(String, String), KnownTimes>,
    concurrency: ConcurrencyFold,
}

impl SummaryFold {
    pub fn new(from: i64, to: i64) -> Self {
        SummaryFold { from, to, known: BTreeMap::new(), concurrency: ConcurrencyFold::new(from, to) }
    }

    /// The sessions' start and end times, and the concurrency points per service.
    pub fn finish(self) -> (BTreeMap<(String, String), KnownTimes>, Series) {
        (self.known, self.concurrency.finish())
    }
}

impl Fold for SummaryFold {
    fn add(&mut self, line: AuditLine) {
        if line.change.is_some() || !(self.from..=self.to).contains(&line.seen_at) {
            return;
        }
        let entry = self.known.entry((line.service.clone(), line.session_id.clone())).or_default();
        entry.0 = entry.0.or(line.started_at);
        entry.1 = line.ended_at.or(entry.1);
        self.concurrency.add(line);
    }

    fn end_partition(&mut self) {
        self.concurrency.end_partition();
    }
}

/// What the scopes answer gathers of one scope.
#[derive(Default)]
pub struct ScopeAcc {
    pub sessions: BTreeSet<String>,
    /// The runs that listed it (by their number in [`ScopesFold`]'s run ids), repeated.
    pub listed_runs: Vec<u32>,
    pub peak: u64,
    pub quiet_runs: u64,
    pub failed_runs: u64,
    pub last_listed_at: Option<i64>,
    /// The last run's end and its error, if it failed.
    pub last_run: Option<(i64, Option<String>)>,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
}

/// Per scope over `[from, to]`: its sessions and runs, from the snapshots and the runs dataset.
pub struct ScopesFold {
    from: i64,
    to: i64,
    run_ids: HashMap<String, u32>,
    scopes: BTreeMap<ScopeKey, ScopeAcc>,
    /// Active lines per scope and run of the day being read.
    open: HashMap<(ScopeKey, u32), u64>,
}

impl ScopesFold {
    pub fn new(from: i64, to: i64) -> Self {
        ScopesFold { from, to, run_ids: HashMap::new(), scopes: BTreeMap::new(), open: HashMap::new() }
    }

    fn run_number(&mut self, run_id: &str) -> u32 {
        if let Some(number) = self.run_ids.get(run_id) {
            return *number;
        }
        let number = self.run_ids.len() as u32;
        self.run_ids.insert(run_id.to_owned(), number);
        number
    }

    /// One line of the runs dataset (one ending outside the range counts for nothing).
    pub fn add_run(&mut self, run: &RunRecord) {
        if !(self.from..=self.to).contains(&run.finished_at) {
            return;
        }
        let number = self.run_number(&run.run_id);
        let acc = self.scopes.entry(run.scope()).or_default();
        if run.listed() {
            acc.quiet_runs += u64::from(run.quiet);
            acc.listed_runs.push(number);
            acc.last_listed_at = Some(acc.last_listed_at.map_or(run.finished_at, |t| t.max(run.finished_at)));
        } else if run.status == "failed" {
            acc.failed_runs += 1;
        }
        if acc.last_run.as_ref().is_none_or(|(at, _)| run.finished_at >= *at) {
            acc.last_run = Some((run.finished_at, run.error.clone().filter(|_| run.status == "failed")));
        }
    }

    /// Each scope's gathering, its runs counted once.
    pub fn finish(mut self) -> BTreeMap<ScopeKey, ScopeAcc> {
        self.end_partition();
        for acc in self.scopes.values_mut() {
            acc.listed_runs.sort_unstable();
            acc.listed_runs.dedup();
        }
        self.scopes
    }
}

impl Fold for ScopesFold {
    fn add(&mut self, line: AuditLine) {
        if line.change.is_some() || !(self.from..=self.to).contains(&line.seen_at) {
            return;
        }
        let number = self.run_number(&line.run_id);
        let scope = line.scope();
        let active = self.open.entry((scope.clone(), number)).or_default();
        *active += u64::from(is_active_status(line.status.as_deref()));
        let acc = self.scopes.entry(scope).or_default();
        acc.sessions.insert(line.session_id);
        acc.first_seen = Some(acc.first_seen.map_or(line.seen_at, |f| f.min(line.seen_at)));
        acc.last_seen = Some(acc.last_seen.map_or(line.seen_at, |l| l.max(line.seen_at)));
    }

    fn end_partition(&mut self) {
        for ((scope, number), active) in self.open.drain() {
            let acc = self.scopes.entry(scope).or_default();
            acc.listed_runs.push(number);
            acc.peak = acc.peak.max(active);
        }
    }
}

/// Several folds fed by one read: each is given every line, and every partition's end.
pub struct Tee<'a>(pub Vec<&'a mut dyn Fold>);

impl Fold for Tee<'_> {
    fn add(&mut self, line: AuditLine) {
        if let Some((last, rest)) = self.0.split_last_mut() {
            rest.iter_mut().for_each(|fold| fold.add(line.clone()));
            last.add(line);
        }
    }

    fn end_partition(&mut self) {
        self.0.iter_mut().for_each(|fold| fold.end_partition());
    }
}
