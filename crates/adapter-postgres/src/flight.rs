//! What a connection has sent and not yet had answered, so that a work dropped
//! mid-statement (its request passed its deadline) knows whether its connection may
//! serve anyone else and whether its write may have been applied.
//!
//! Every pooled connection carries a [`Flight`] as its diesel instrumentation: diesel
//! reports the start and the end of each statement and of each transaction to it. A
//! statement whose future is dropped never reports its end, so the flight still shows
//! it when the work is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tracing::Span;

/// What is in flight on a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InFlight {
    /// Nothing: every statement sent has been answered.
    Nothing,
    /// A statement inside a transaction, or its `BEGIN` or `ROLLBACK`: closing the
    /// connection rolls the transaction back, so nothing it did can remain.
    Discardable,
    /// A statement in autocommit mode, or a `COMMIT`: the server may apply it whatever
    /// becomes of the connection.
    MayApply,
}

impl InFlight {
    const fn encode(self) -> u8 {
        match self {
            Self::Nothing => 0,
            Self::Discardable => 1,
            Self::MayApply => 2,
        }
    }

    const fn decode(value: u8) -> Self {
        match value {
            0 => Self::Nothing,
            1 => Self::Discardable,
            _ => Self::MayApply,
        }
    }
}

/// The instrumentation every pooled connection carries. diesel owns it; the work that
/// holds the connection reads what it publishes through a [`FlightWatch`].
#[derive(Debug)]
pub(crate) struct Flight {
    published: Arc<AtomicU8>,
    /// The statement in flight, as a span (target `sql`, level TRACE: only an exporter
    /// of spans enables it; otherwise it costs nothing).
    statement: Span,
    in_transaction: bool,
    /// The outermost transaction's `COMMIT` is the next statement.
    committing: bool,
    /// The outermost transaction ends with the next statement's answer.
    ending: bool,
}

impl Default for Flight {
    fn default() -> Self {
        Self {
            published: Arc::default(),
            statement: Span::none(),
            in_transaction: false,
            committing: false,
            ending: false,
        }
    }
}

impl Instrumentation for Flight {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::BeginTransaction { .. } => self.in_transaction = true,
            InstrumentationEvent::CommitTransaction { depth, .. } if depth.get() == 1 => {
                self.committing = true;
                self.ending = true;
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } if depth.get() == 1 => self.ending = true,
            InstrumentationEvent::StartQuery { query, .. } => {
                let in_flight =
                    if self.in_transaction && !self.committing { InFlight::Discardable } else { InFlight::MayApply };
                self.published.store(in_flight.encode(), Ordering::Release);
                self.statement = tracing::trace_span!(target: "sql", "statement", db.system = "postgresql", db.statement = tracing::field::Empty);
                if !self.statement.is_disabled() {
                    // The SQL without its bind values (amounts, ids, keys stay out of traces).
                    let text = query.to_string();
                    let sql = text.split(" -- binds:").next().unwrap_or_default();
                    self.statement.record("db.statement", sql);
                }
            }
            InstrumentationEvent::FinishQuery { .. } => {
                self.published.store(InFlight::Nothing.encode(), Ordering::Release);
                // Closes the statement's span.
                self.statement = Span::none();
                if self.ending {
                    // Committed, rolled back or failed: the server's transaction is over.
                    self.in_transaction = false;
                    self.committing = false;
                    self.ending = false;
                }
            }
            _ => {}
        }
    }
}

/// A view of one connection's [`Flight`], kept by the work that holds the connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlightWatch(Option<Arc<AtomicU8>>);

impl FlightWatch {
    /// The watch of `conn`'s flight. Only call it while no statement future of `conn`
    /// exists (diesel refuses to lend an instrumentation that a pending statement shares).
    pub(crate) fn of(conn: &mut AsyncPgConnection) -> Self {
        Self(conn.instrumentation().downcast_ref::<Flight>().map(|flight| Arc::clone(&flight.published)))
    }

    /// What is in flight now. A connection without a [`Flight`] reports `MayApply`:
    /// what it has sent cannot be known.
    pub(crate) fn now(&self) -> InFlight {
        self.0.as_ref().map_or(InFlight::MayApply, |published| InFlight::decode(published.load(Ordering::Acquire)))
    }
}
