//! Back office: creating users, and finding one.

use std::sync::Arc;

use domain::UserId;
use domain::user::{User, UserName};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::ports::{Ports, StoreError, UnitOfWork, finish};

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
        let created = work.users().create(&name).await;
        finish(work, created).await
    }

    /// [`Self::execute`], at most once per idempotency key.
    #[tracing::instrument(skip_all)]
    pub async fn execute_keyed(
        &self,
        name: UserName,
        key: Option<Key<User>>,
    ) -> Result<Answer<User>, KeyedError<StoreError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(name).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let created = work.users().create(&name).await;
        work.finish(created).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindUserError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a user exists (e.g. before a token is issued for them).
#[derive(Clone)]
pub struct FindUser {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(FindUser);

impl FindUser {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    /// # Errors
    /// [`FindUserError::UserNotFound`] for an unknown user.
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user: UserId) -> Result<UserId, FindUserError> {
        let mut work = self.uow.autocommit().await?;
        if work.users().exists(user).await? { Ok(user) } else { Err(FindUserError::UserNotFound(user)) }
    }
}

/// The back office's user use cases.
#[derive(Debug, Clone)]
pub struct Users {
    pub create: CreateUser,
    pub find: FindUser,
}

impl Users {
    pub fn new(ports: &Ports) -> Self {
        Self { create: CreateUser::new(ports.uow.clone()), find: FindUser::new(ports.uow.clone()) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use domain::testing::uid;

    use super::*;
    use crate::usecases::test_support::FakeWork;

    #[tokio::test]
    async fn a_known_user_is_found_and_an_unknown_one_is_not() {
        for (exists, found) in [(true, true), (false, false)] {
            let mut work = FakeWork::default();
            work.users.expect_exists().times(1).returning(move |_| Ok(exists));
            let (uow, _) = work.into_reader();
            let outcome = FindUser::new(uow).execute(uid(3)).await;
            assert_eq!(outcome.is_ok(), found);
            if !found {
                assert!(matches!(outcome, Err(FindUserError::UserNotFound(id)) if id == uid(3)));
            }
        }
    }
}
