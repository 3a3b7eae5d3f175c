//! The pace of a run's list calls, shared by its listings.

use std::time::Duration;

/// Keeps list calls at most `per_second` apart on average.
pub(super) struct Pacer {
    interval: Option<Duration>,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    pub(super) fn new(per_second: Option<f64>) -> Self {
        Pacer { interval: per_second.map(|pace| Duration::from_secs_f64(1.0 / pace)), next: None }
    }

    pub(super) async fn wait(&mut self) {
        let Some(interval) = self.interval else { return };
        let now = tokio::time::Instant::now();
        if let Some(next) = self.next.filter(|next| *next > now) {
            tokio::time::sleep_until(next).await;
        }
        self.next = Some(self.next.map_or(now, |next| next.max(now)) + interval);
    }
}
