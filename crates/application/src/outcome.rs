//! Whether a write that was cut short may have been applied.
//!
//! A use case cut short at its deadline is dropped wherever it was waiting. If it was
//! waiting on an autocommitted statement or on a `COMMIT`, the database may have
//! applied the write anyway; only the [`UnitOfWork`](crate::UnitOfWork) implementation
//! knows what it had sent. It says so with [`write_in_doubt`], from the drop of its
//! work, and whoever runs the use case inside [`watch`] learns it afterwards — the
//! HTTP adapter answers `OUTCOME_UNKNOWN` then, instead of "nothing was changed".
//!
//! The flag belongs to the one use case [`watch`] runs: it is current on a thread only
//! while that use case is polled or dropped there (as a task-local is, without
//! needing a runtime), and [`write_in_doubt`] outside of [`watch`] (a background job)
//! does nothing.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

thread_local! {
    /// The flag of the watch whose work this thread is polling or dropping now.
    static CURRENT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `work` and returns its output with whether a write it began may have been
/// applied without its answer being read. Whatever `work` drops before it ends (the
/// use case, when `work` bounds it by a deadline) is dropped inside the watch.
pub fn watch<F: Future>(work: F) -> Watch<F> {
    Watch { work: Some(Box::pin(work)), in_doubt: Arc::new(AtomicBool::new(false)) }
}

/// The future of [`watch`]: the flag is current while its work is polled or dropped.
#[must_use = "a watch does nothing unless awaited"]
pub struct Watch<F> {
    work: Option<Pin<Box<F>>>,
    in_doubt: Arc<AtomicBool>,
}

impl<F> std::fmt::Debug for Watch<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("in_doubt", &self.in_doubt).finish_non_exhaustive()
    }
}

/// Runs `f` with `flag` current on this thread, then makes the previous one current.
fn within<R>(flag: &Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(Arc::clone(flag)))));
    f()
}

impl<F: Future> Future for Watch<F> {
    type Output = (F::Output, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(work) = this.work.as_mut() else { unreachable!("a watch is polled after it ended") };
        let Poll::Ready(output) = within(&this.in_doubt, || work.as_mut().poll(cx)) else {
            return Poll::Pending;
        };
        let ended = this.work.take();
        within(&this.in_doubt, || drop(ended));
        Poll::Ready((output, this.in_doubt.load(Ordering::Acquire)))
    }
}

impl<F> Drop for Watch<F> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            within(&self.in_doubt, || drop(work));
        }
    }
}

/// Records that a write was abandoned while its outcome was unknown (a statement in
/// autocommit mode or a `COMMIT` had been sent and not answered).
pub fn write_in_doubt() {
    // Outside `watch` nobody asks: a job's write in doubt is settled by its next run.
    let _ = CURRENT.try_with(|current| {
        if let Some(in_doubt) = current.borrow().as_ref() {
            in_doubt.store(true, Ordering::Release);
        }
    });
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
    async fn work_that_ends_normally_is_not_in_doubt() {
        assert_eq!(watch(async { 7 }).await, (7, false));
    }

    #[tokio::test]
    async fn a_write_abandoned_when_a_deadline_drops_it_is_reported() {
        let (output, in_doubt) = watch(async {
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
    async fn each_watch_has_its_own_flag_and_outside_one_nothing_is_recorded() {
        write_in_doubt();
        let ((), first) = watch(async { write_in_doubt() }).await;
        let ((), second) = watch(async {}).await;
        assert!(first);
        assert!(!second);
    }

    #[tokio::test]
    async fn a_nested_watch_keeps_its_own_flag_and_gives_the_outer_one_back() {
        let (inner, outer) = watch(async { watch(async { write_in_doubt() }).await.1 }).await;
        assert!(inner);
        assert!(!outer, "the inner watch's write is not the outer one's");
        let ((), outer) = watch(async {
            let ((), _) = watch(async {}).await;
            write_in_doubt();
        })
        .await;
        assert!(outer, "after an inner watch ends, the outer flag is current again");
    }

    #[tokio::test]
    async fn a_watch_dropped_before_its_work_ends_drops_the_work_inside_it() {
        let flag = {
            let watched = watch(async {
                let _write = AbandonedWrite;
                std::future::pending::<()>().await;
            });
            let flag = Arc::clone(&watched.in_doubt);
            let mut watched = Box::pin(watched);
            let polled = futures_poll_once(watched.as_mut()).await;
            assert!(polled.is_none());
            flag
        };
        assert!(flag.load(Ordering::Acquire), "the abandoned write was recorded on the dropped watch's flag");
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
