//! The times one invocation works to, so that it ends by its deadline whatever it waits on.
//!
//! Lambda gives an invocation a deadline. Before it, in this order:
//! - **stop paging** (`DEADLINE_MARGIN_SECONDS` before it): no new page is read; the part is
//!   written and its place saved in the time left;
//! - **give up** (the failure reserve before it: twice the attempt timeout and a second): any wait
//!   on a call still going (a silent DynamoDB, a stalled upload, a slow previous-state read) is
//!   dropped with [`Error::Timeout`];
//! - **end** (half a second before it): the failure path (aborting uploads, marking the manifest,
//!   releasing the lease) stops waiting, so the error still reaches Lambda in time.
//!
//! The run's lease expires at the deadline too: no invocation outlives it, so a lease its holder
//! could not give back never blocks the next invocation for longer.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How long before Lambda's deadline the failure path stops waiting: time to send the error.
pub const LAST_WORD: Duration = Duration::from_millis(500);

/// The times one invocation works to; all `None` for a run without a deadline (tests, tools).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// No page is read from here on.
    pub stop_paging: Option<Instant>,
    /// Waits on AWS calls are dropped from here on, keeping the rest for the failure path.
    pub give_up: Option<Instant>,
    /// The failure path stops waiting here.
    pub end: Option<Instant>,
    /// The invocation's deadline in epoch seconds, rounded up: when its lease expires.
    pub deadline_epoch_seconds: Option<i64>,
}

impl Deadlines {
    /// No deadline at all.
    pub fn none() -> Self {
        Deadlines::default()
    }

    /// Paging stops at `at`; no wait is bounded (a test's short invocation).
    pub fn paging_until(at: Instant) -> Self {
        Deadlines { stop_paging: Some(at), ..Deadlines::none() }
    }

    /// The times of a Lambda invocation whose deadline is `deadline_ms` (epoch milliseconds):
    /// paging stops `margin` before it, waits give up `reserve` before it.
    pub fn lambda(deadline_ms: u64, margin: Duration, reserve: Duration) -> Self {
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let now = Instant::now();
        Deadlines {
            stop_paging: Some(now + left.saturating_sub(margin)),
            give_up: Some(now + left.saturating_sub(reserve)),
            end: Some(now + left.saturating_sub(LAST_WORD)),
            deadline_epoch_seconds: Some(i64::try_from(deadline_ms.div_ceil(1000)).unwrap_or(i64::MAX)),
        }
    }

    /// Whether paging has had to stop: no new scope of a batch starts.
    pub fn paging_stopped(&self) -> bool {
        self.stop_paging.is_some_and(|stop| Instant::now() >= stop)
    }

    /// When a lease taken at `now` (epoch seconds) for at most `longest` expires: at the
    /// invocation's deadline when it has one, since nobody holds it after that.
    pub fn lease_until(&self, now: i64, longest: Duration) -> i64 {
        let longest = now.saturating_add(i64::try_from(longest.as_secs()).unwrap_or(i64::MAX));
        self.deadline_epoch_seconds.map_or(longest, |deadline| deadline.min(longest))
    }

    /// Runs `work` unless the give-up time comes first: then `work` is dropped (its calls with
    /// it) and the run gets a retryable [`Error::Timeout`] naming what it was waiting for.
    pub async fn work<T>(&self, waiting_for: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.bounded(self.give_up, waiting_for, work).await
    }

    /// Runs a step of the failure path unless the invocation's end comes first.
    pub async fn last<T>(&self, waiting_for: &'static str, step: impl Future<Output = Result<T>>) -> Result<T> {
        self.bounded(self.end, waiting_for, step).await
    }

    async fn bounded<T>(
        &self,
        until: Option<Instant>,
        waiting_for: &'static str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(until) = until else { return work.await };
        match tokio::time::timeout_at(until, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { waiting_for, reserve_seconds: self.reserve_seconds() }),
        }
    }

    /// How far the give-up time is from the deadline, in whole seconds.
    fn reserve_seconds(&self) -> u64 {
        match (self.give_up, self.end) {
            (Some(give_up), Some(end)) => (end.saturating_duration_since(give_up) + LAST_WORD).as_secs(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ms(ms: u64) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        (now + Duration::from_millis(ms)).as_millis() as u64
    }

    #[tokio::test]
    async fn a_lambda_invocation_stops_paging_then_gives_up_then_ends_before_its_deadline() {
        // GIVEN an invocation 60 s from its deadline, a 20 s margin and a 5 s reserve
        let deadlines = Deadlines::lambda(in_ms(60_000), Duration::from_secs(20), Duration::from_secs(5));
        let (stop, give_up, end) = (deadlines.stop_paging.unwrap(), deadlines.give_up.unwrap(), deadlines.end.unwrap());
        // THEN paging stops first, waits give up next, and the failure path ends last
        let now = Instant::now();
        assert!(stop < give_up && give_up < end, "{deadlines:?}");
        assert!((39_000..=40_100).contains(&(stop - now).as_millis()), "{:?}", stop - now);
        assert!((54_000..=55_100).contains(&(give_up - now).as_millis()), "{:?}", give_up - now);
        assert!((59_000..=59_600).contains(&(end - now).as_millis()), "{:?}", end - now);
        // AND its lease expires at its deadline, not 16 minutes on
        let now_s = (in_ms(0) / 1000) as i64;
        let lease = deadlines.lease_until(now_s, Duration::from_secs(960));
        assert!((now_s + 59..=now_s + 61).contains(&lease), "{lease} against {now_s}");
        assert_eq!(Deadlines::none().lease_until(now_s, Duration::from_secs(960)), now_s + 960);
    }

    #[tokio::test]
    async fn a_deadline_already_past_gives_up_at_once() {
        // GIVEN an invocation whose deadline has passed
        let deadlines =
            Deadlines::lambda(in_ms(0).saturating_sub(5_000), Duration::from_secs(20), Duration::from_secs(5));
        // WHEN the run waits on anything
        let err = deadlines.work("DynamoDB", std::future::pending::<Result<()>>()).await.unwrap_err();
        // THEN it gets a retryable timeout naming the wait
        assert!(err.is_retryable());
        assert!(err.to_string().starts_with("gave up waiting for DynamoDB"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_outlasts_the_give_up_time_is_dropped_and_the_failure_path_still_runs() {
        // GIVEN a run 10 s from its deadline, with 3 s kept for the failure path
        let deadlines = Deadlines::lambda(in_ms(10_000), Duration::from_secs(6), Duration::from_secs(3));
        let started = Instant::now();
        // WHEN a call never answers
        let err = deadlines.work("S3: the part's history objects", std::future::pending::<Result<()>>()).await;
        // THEN the wait ends at the give-up time with the reserve named
        let message = err.unwrap_err().to_string();
        assert_eq!(
            message,
            "gave up waiting for S3: the part's history objects: the invocation's deadline is 3 s away, the time kept to record the failure"
        );
        assert!((6_900..=7_100).contains(&started.elapsed().as_millis()), "{:?}", started.elapsed());
        // AND a step of the failure path that answers in time completes
        let step = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok("manifest failed")
        };
        assert_eq!(deadlines.last("DynamoDB: the run manifest", step).await.unwrap(), "manifest failed");
        // AND one that does not is dropped before the deadline
        assert!(deadlines.last("DynamoDB: the lease", std::future::pending::<Result<()>>()).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn without_a_deadline_nothing_is_bounded() {
        let deadlines = Deadlines::none();
        assert_eq!(deadlines.work("x", async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(deadlines.last("x", async { Ok(2) }).await.unwrap(), 2);
    }
}
