use async_trait::async_trait;

/// The bulkhead in front of payments (ADR 0006): at most so many run at once, so that
/// payments stuck on a slow data platform never hold every database connection.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentSlots: Send + Sync {
    /// A slot, held until the returned [`Slot`] is dropped; `None` when none freed up
    /// within the implementation's bounded wait.
    async fn enter(&self) -> Option<Slot>;
}

/// A held slot of [`PaymentSlots`]: the payment that holds it owns it, whatever its
/// caller does, and dropping it frees it.
pub struct Slot(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Slot {
    /// A slot that frees itself when `held` is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self(Box::new(held))
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}
