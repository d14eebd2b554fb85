//! Back office: creating users.

use std::sync::Arc;

use domain::user::{User, UserName};

use super::opaque_debug;
use crate::ports::{StoreError, UnitOfWork, finish};

/// Creates a user with an empty balance.
#[derive(Clone)]
pub struct CreateUser {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(CreateUser);

impl CreateUser {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip_all)]
    pub async fn execute(&self, name: UserName) -> Result<User, StoreError> {
        let mut work = self.uow.begin().await?;
        let outcome = work.users().create(&name).await;
        finish(work, outcome).await
    }
}
