//! What a request's use case carries without passing it along: its trace context, and
//! whether a write of it that was cut short may have been applied.
//!
//! The trace context ([`TraceParent`]) is the position in the caller's trace that the
//! request continues; adapters that call out (the data platform) send it on, and the
//! database adapter records it with an event that is delivered later.
//!
//! A use case cut short at its deadline is dropped wherever it was waiting. If it was
//! waiting on an autocommitted statement or on a `COMMIT`, the database may have
//! applied the write anyway; only the [`UnitOfWork`](crate::UnitOfWork) implementation
//! knows what it had sent. It says so with [`write_in_doubt`], from the drop of its
//! work, and whoever runs the use case inside [`run`] learns it afterwards — the HTTP
//! adapter answers `OUTCOME_UNKNOWN` then, instead of "nothing was changed".
//!
//! A scope belongs to the one future [`run`] runs: it is current on a thread only while
//! that future is polled or dropped there (as a task-local is, without needing a
//! runtime). Outside of any scope (a background job) there is no trace context and
//! [`write_in_doubt`] does nothing.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::trace::TraceParent;

/// What one scope holds.
#[derive(Debug)]
struct Scope {
    trace: Option<TraceParent>,
    in_doubt: AtomicBool,
}

thread_local! {
    /// The scope whose future this thread is polling or dropping now.
    static CURRENT: RefCell<Option<Arc<Scope>>> = const { RefCell::new(None) };
}

/// Runs `work` in a scope with `trace` as its trace context, and returns its output with
/// whether a write it began may have been applied without its answer being read.
/// Whatever `work` drops before it ends (the use case, when `work` bounds it by a
/// deadline) is dropped inside the scope.
pub fn run<F: Future>(trace: Option<TraceParent>, work: F) -> Scoped<F> {
    Scoped { work: Some(Box::pin(work)), scope: Arc::new(Scope { trace, in_doubt: AtomicBool::new(false) }) }
}

/// The future of [`run`]: its scope is current while its work is polled or dropped.
#[must_use = "a scope does nothing unless awaited"]
pub struct Scoped<F> {
    work: Option<Pin<Box<F>>>,
    scope: Arc<Scope>,
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// Runs `f` with `scope` current on this thread, then makes the previous one current.
fn within<R>(scope: &Arc<Scope>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<Scope>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(Arc::clone(scope)))));
    f()
}

impl<F: Future> Future for Scoped<F> {
    type Output = (F::Output, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(work) = this.work.as_mut() else { unreachable!("a scope is polled after it ended") };
        let Poll::Ready(output) = within(&this.scope, || work.as_mut().poll(cx)) else {
            return Poll::Pending;
        };
        let ended = this.work.take();
        within(&this.scope, || drop(ended));
        Poll::Ready((output, this.scope.in_doubt.load(Ordering::Acquire)))
    }
}

impl<F> Drop for Scoped<F> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            within(&self.scope, || drop(work));
        }
    }
}

/// Records that a write was abandoned while its outcome was unknown (a statement in
/// autocommit mode or a `COMMIT` had been sent and not answered).
pub fn write_in_doubt() {
    // Outside a scope nobody asks: a job's write in doubt is settled by its next run.
    let _ = CURRENT.try_with(|current| {
        if let Some(scope) = current.borrow().as_ref() {
            scope.in_doubt.store(true, Ordering::Release);
        }
    });
}

/// The trace context of the current scope, if any.
pub fn traceparent() -> Option<TraceParent> {
    CURRENT.try_with(|current| current.borrow().as_ref().and_then(|scope| scope.trace)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AbandonedWrite;

    impl Drop for AbandonedWrite {
        fn drop(&mut self) {
            write_in_doubt();
        }
    }

    #[tokio::test]
    async fn the_trace_is_current_inside_its_scope_and_only_there() {
        let trace = TraceParent::start([7; 16], [9; 8]);
        let (inside, _) = run(trace, async {
            tokio::task::yield_now().await;
            traceparent()
        })
        .await;
        assert_eq!(inside, trace);
        assert_eq!(traceparent(), None);
        let (nested, _) = run(trace, run(None, async { traceparent() })).await;
        assert_eq!(nested.0, None, "an inner scope has its own trace context");
    }

    #[tokio::test]
    async fn work_that_ends_normally_is_not_in_doubt() {
        assert_eq!(run(None, async { 7 }).await, (7, false));
    }

    #[tokio::test]
    async fn a_write_abandoned_when_a_deadline_drops_it_is_reported() {
        let (output, in_doubt) = run(None, async {
            let pending = async {
                let _write = AbandonedWrite;
                std::future::pending::<()>().await;
            };
            tokio::time::timeout(std::time::Duration::from_millis(10), pending).await
        })
        .await;
        assert!(output.is_err(), "the deadline passed");
        assert!(in_doubt);
    }

    #[tokio::test]
    async fn each_scope_has_its_own_flag_and_outside_one_nothing_is_recorded() {
        write_in_doubt();
        let ((), first) = run(None, async { write_in_doubt() }).await;
        let ((), second) = run(None, async {}).await;
        assert!(first);
        assert!(!second);
    }

    #[tokio::test]
    async fn a_nested_scope_keeps_its_own_flag_and_gives_the_outer_one_back() {
        let (inner, outer) = run(None, async { run(None, async { write_in_doubt() }).await.1 }).await;
        assert!(inner);
        assert!(!outer, "the inner scope's write is not the outer one's");
        let ((), outer) = run(None, async {
            let ((), _) = run(None, async {}).await;
            write_in_doubt();
        })
        .await;
        assert!(outer, "after an inner scope ends, the outer flag is current again");
    }

    #[tokio::test]
    async fn a_scope_dropped_before_its_work_ends_drops_the_work_inside_it() {
        let flag = {
            let scopeed = run(None, async {
                let _write = AbandonedWrite;
                std::future::pending::<()>().await;
            });
            let flag = Arc::clone(&scopeed.scope);
            let mut scopeed = Box::pin(scopeed);
            let polled = futures_poll_once(scopeed.as_mut()).await;
            assert!(polled.is_none());
            flag
        };
        assert!(flag.in_doubt.load(Ordering::Acquire), "the abandoned write was recorded on the dropped scope");
    }

    /// Polls `future` once; `Some` with its output if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut future).poll(cx) {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            })
        })
        .await
    }
}
