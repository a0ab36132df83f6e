//! Write quorum and the per-series error classification of replicated writes.
//!
//! Every series is written to `replicas` endpoints and succeeds once [`write_quorum`]
//! of them acknowledged it. A [`ReplicaTally`] collects the replies of one series and
//! decides it; [`request_cause`] folds the causes of all failed series into the one the
//! request reports.

use http::StatusCode;

/// Successful replica writes a series needs: 1 for replication factor 2, otherwise
/// `floor(rf / 2) + 1` (1 → 1, 3 → 2, 4 → 3, 5 → 3).
pub fn write_quorum(replication_factor: u64) -> u64 {
    if replication_factor == 2 {
        1
    } else {
        replication_factor / 2 + 1
    }
}

/// Class of one failed replica write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The data conflicts with what is stored (out of order, duplicate timestamp, out of
    /// bounds, too old, invalid labels, exemplar conflicts); retrying cannot help.
    Conflict,
    /// The target is not ready (starting, reloading).
    NotReady,
    /// The target is unreachable, backing off, or answered `Unavailable`.
    Unavailable,
    /// Anything else (commit errors, timeouts, internal errors).
    Other,
}

/// Why a series (or a request) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCause {
    /// Conflicts prevented quorum: 409, gRPC `AlreadyExists`.
    Conflict,
    /// Not-ready targets prevented quorum: 503, gRPC `Unavailable`.
    NotReady,
    /// Unavailable targets or a mix of failures prevented quorum (retryable): 503, gRPC
    /// `Unavailable`.
    Unavailable,
    /// An error outside replication (for example an internal error): 500, gRPC `Internal`.
    Internal,
}

impl FailureCause {
    /// The HTTP status the remote-write handler answers with.
    pub fn http_status(self) -> StatusCode {
        match self {
            FailureCause::Conflict => StatusCode::CONFLICT,
            FailureCause::NotReady | FailureCause::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            FailureCause::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Rank in the request-level priority (higher wins).
    fn priority(self) -> u8 {
        match self {
            FailureCause::Unavailable => 3,
            FailureCause::NotReady => 2,
            FailureCause::Conflict => 1,
            FailureCause::Internal => 0,
        }
    }
}

/// State of one series' replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOutcome {
    /// Not decided yet: keep waiting for replies (or the forward timeout).
    Pending,
    /// Quorum reached.
    Succeeded,
    /// Quorum can no longer be reached, or every replica replied without reaching it.
    Failed(FailureCause),
}

/// Replies for one series written to `replicas` endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaTally {
    replicas: u64,
    quorum: u64,
    successes: u64,
    conflict: u64,
    not_ready: u64,
    unavailable: u64,
    other: u64,
}

impl ReplicaTally {
    /// A tally for a fresh request: `replication_factor` replicas, quorum
    /// [`write_quorum`]`(replication_factor)`.
    pub fn new(replication_factor: u64) -> Self {
        Self::with_quorum(replication_factor, write_quorum(replication_factor))
    }

    /// A tally with an explicit quorum (an already-replicated request is written once and
    /// needs 1).
    pub fn with_quorum(replicas: u64, quorum: u64) -> Self {
        Self {
            replicas,
            quorum,
            successes: 0,
            conflict: 0,
            not_ready: 0,
            unavailable: 0,
            other: 0,
        }
    }

    /// Records an acknowledged replica write.
    pub fn record_success(&mut self) {
        self.successes += 1;
    }

    /// Records a failed replica write (a timed-out one counts as [`ErrorClass::Other`]).
    pub fn record_error(&mut self, class: ErrorClass) {
        match class {
            ErrorClass::Conflict => self.conflict += 1,
            ErrorClass::NotReady => self.not_ready += 1,
            ErrorClass::Unavailable => self.unavailable += 1,
            ErrorClass::Other => self.other += 1,
        }
    }

    /// Failed replica writes so far.
    pub fn errors(&self) -> u64 {
        self.conflict + self.not_ready + self.unavailable + self.other
    }

    /// Errors after which quorum is out of reach: `replicas − quorum + 1`.
    pub fn failure_threshold(&self) -> u64 {
        (self.replicas + 1).saturating_sub(self.quorum)
    }

    /// Decides the series: succeeded at quorum; failed early once conflicts alone reach the
    /// failure threshold; otherwise pending until every replica replied.
    pub fn outcome(&self) -> SeriesOutcome {
        if self.successes >= self.quorum {
            return SeriesOutcome::Succeeded;
        }
        if self.conflict >= self.failure_threshold()
            || self.successes + self.errors() >= self.replicas
        {
            return SeriesOutcome::Failed(self.cause());
        }
        SeriesOutcome::Pending
    }

    /// The cause of a failed series: the most frequent class among conflict, not-ready and
    /// unavailable (ties in that order) if it occurred at least quorum times; otherwise
    /// unavailable, as the failure came from a mix of errors and a retry may succeed.
    ///
    /// Thanos returns no cause when fewer than quorum errors occurred (possible when
    /// replicas − quorum + 1 < quorum, e.g. replication factor 4, or after a timeout);
    /// such a series still missed quorum, so it is reported as unavailable too.
    pub fn cause(&self) -> FailureCause {
        let classes = [
            (self.conflict, FailureCause::Conflict),
            (self.not_ready, FailureCause::NotReady),
            (self.unavailable, FailureCause::Unavailable),
        ];
        let mut top = classes[0];
        for class in &classes[1..] {
            if class.0 > top.0 {
                top = *class;
            }
        }
        if top.0 >= self.quorum {
            top.1
        } else {
            FailureCause::Unavailable
        }
    }
}

/// The cause a request reports given the causes of its failed series (and any other
/// errors): unavailable > not-ready > conflict > internal. `None` when nothing failed.
pub fn request_cause(causes: impl IntoIterator<Item = FailureCause>) -> Option<FailureCause> {
    causes.into_iter().max_by_key(|c| c.priority())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_values() {
        let got: Vec<u64> = (1..=7).map(write_quorum).collect();
        assert_eq!(got, [1, 1, 2, 3, 3, 4, 4]);
    }

    /// Decides a series from complete replies: `ok` successes and the given errors.
    fn decide(rf: u64, ok: u64, errors: &[ErrorClass]) -> SeriesOutcome {
        let mut t = ReplicaTally::new(rf);
        for _ in 0..ok {
            t.record_success();
        }
        for e in errors {
            t.record_error(*e);
        }
        t.outcome()
    }

    use ErrorClass::{Conflict, NotReady, Other, Unavailable};

    #[test]
    fn unit_test_examples_rf3() {
        // One faulty replica with conflicts → request succeeds.
        assert_eq!(decide(3, 2, &[Conflict]), SeriesOutcome::Succeeded);
        // Two conflicts → 409.
        assert_eq!(
            decide(3, 1, &[Conflict, Conflict]),
            SeriesOutcome::Failed(FailureCause::Conflict)
        );
        // One conflict + one generic commit error → 503.
        assert_eq!(
            decide(3, 1, &[Conflict, Other]),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );
        // Two commit errors → 503.
        assert_eq!(
            decide(3, 1, &[Other, Other]),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );
        // Two conflicts + one commit error → 409.
        assert_eq!(
            decide(3, 0, &[Conflict, Conflict, Other]),
            SeriesOutcome::Failed(FailureCause::Conflict)
        );
        // All commit errors → 503; one commit error → 200.
        assert_eq!(
            decide(3, 0, &[Other, Other, Other]),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );
        assert_eq!(decide(3, 2, &[Other]), SeriesOutcome::Succeeded);
        // Two not-ready replicas → not ready (503).
        assert_eq!(
            decide(3, 1, &[NotReady, NotReady]),
            SeriesOutcome::Failed(FailureCause::NotReady)
        );
    }

    #[test]
    fn unit_test_examples_other_factors() {
        // RF=5 with two commit errors → 200.
        assert_eq!(decide(5, 3, &[Other, Other]), SeriesOutcome::Succeeded);
        // Single node: commit error → 503, conflict → 409.
        assert_eq!(
            decide(1, 0, &[Other]),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );
        assert_eq!(
            decide(1, 0, &[Conflict]),
            SeriesOutcome::Failed(FailureCause::Conflict)
        );
        // RF=2 (quorum 1): one success is enough; a conflict/unavailable tie is a conflict.
        assert_eq!(decide(2, 1, &[Unavailable]), SeriesOutcome::Succeeded);
        assert_eq!(
            decide(2, 0, &[Unavailable, Conflict]),
            SeriesOutcome::Failed(FailureCause::Conflict)
        );
        // RF=4 (quorum 3): two errors already make quorum unreachable.
        assert_eq!(
            decide(4, 2, &[Conflict, Other]),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );
    }

    #[test]
    fn early_decisions() {
        let mut t = ReplicaTally::new(3);
        assert_eq!(t.outcome(), SeriesOutcome::Pending);
        t.record_error(Other);
        t.record_error(Unavailable);
        // Quorum is out of reach, but only conflicts end the wait early.
        assert_eq!(t.outcome(), SeriesOutcome::Pending);
        t.record_success();
        assert_eq!(
            t.outcome(),
            SeriesOutcome::Failed(FailureCause::Unavailable)
        );

        let mut t = ReplicaTally::new(3);
        t.record_error(Conflict);
        t.record_error(Conflict);
        assert_eq!(t.failure_threshold(), 2);
        assert_eq!(t.outcome(), SeriesOutcome::Failed(FailureCause::Conflict));

        let mut t = ReplicaTally::new(3);
        t.record_success();
        t.record_success();
        assert_eq!(
            t.outcome(),
            SeriesOutcome::Succeeded,
            "third reply not needed"
        );

        // Already-replicated request: one write, quorum 1.
        let mut t = ReplicaTally::with_quorum(1, 1);
        t.record_error(NotReady);
        assert_eq!(t.outcome(), SeriesOutcome::Failed(FailureCause::NotReady));
        assert_eq!(t.errors(), 1);
    }

    #[test]
    fn request_level_priority() {
        use FailureCause as C;
        assert_eq!(request_cause([]), None);
        assert_eq!(request_cause([C::Conflict, C::Conflict]), Some(C::Conflict));
        assert_eq!(
            request_cause([C::Conflict, C::Unavailable]),
            Some(C::Unavailable)
        );
        assert_eq!(request_cause([C::NotReady, C::Conflict]), Some(C::NotReady));
        assert_eq!(
            request_cause([C::Unavailable, C::NotReady]),
            Some(C::Unavailable)
        );
        assert_eq!(request_cause([C::Internal, C::Conflict]), Some(C::Conflict));
        assert_eq!(request_cause([C::Internal]), Some(C::Internal));
        // 6 nodes, RF=3, one commit-error node and two conflicting nodes: some series fail
        // by conflict, some by a mix → the request is 503.
        let worst = request_cause([C::Conflict, C::Unavailable, C::Conflict]);
        assert_eq!(
            worst.map(C::http_status),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(C::Conflict.http_status(), StatusCode::CONFLICT);
        assert_eq!(C::Internal.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
