//! Readiness: whether the service can serve requests that need the store.

use std::sync::Arc;

use super::opaque_debug;
use crate::ports::{StoreError, UnitOfWork};

/// Reports whether the store answers.
#[derive(Clone)]
pub struct CheckReadiness {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(CheckReadiness);

impl CheckReadiness {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    pub async fn execute(&self) -> Result<(), StoreError> {
        self.uow.ping().await
    }
}
