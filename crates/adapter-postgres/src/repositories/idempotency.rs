use application::StoreError;
use application::ports::{Claim, IdempotencyKey, IdempotencyRepository, Reply};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::{StoreContext, corrupt, is_lock_timeout};
use crate::functions::{delete_expired_idempotency_keys, lock_idempotency_key};
use crate::schema::idempotency_keys;
use crate::work::PgWork;

#[async_trait]
impl IdempotencyRepository for PgWork {
    async fn claim(&mut self, key: &IdempotencyKey) -> Result<Claim, StoreError> {
        // Inserting waits for a concurrent transaction that holds the same key: once it
        // commits, the insert does nothing and the row below is its reply; once it rolls
        // back, this insert takes the key. `lock_timeout` bounds the wait.
        let inserted = diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::scope.eq(&key.scope),
                idempotency_keys::key.eq(&key.key),
                idempotency_keys::fingerprint.eq(&key.fingerprint),
            ))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await;
        match inserted {
            Ok(1) => return Ok(Claim::Claimed),
            Ok(_) => {}
            Err(error) if is_lock_timeout(&error) => return Ok(Claim::InFlight),
            Err(error) => return Err(error).store_context("claiming an idempotency key"),
        }
        let ttl_secs = i64::try_from(self.key_ttl.as_secs()).unwrap_or(i64::MAX);
        let (fingerprint, body, expired): (Vec<u8>, Option<Vec<u8>>, bool) =
            diesel::select(lock_idempotency_key(&key.scope, &key.key, ttl_secs))
                .get_result(self.conn())
                .await
                .store_context("reading an idempotency key")?;
        if expired {
            // Past its lifetime the key is free again: this request takes it over.
            diesel::update(idempotency_keys::table.find((&key.scope, &key.key)))
                .set((
                    idempotency_keys::fingerprint.eq(&key.fingerprint),
                    idempotency_keys::body.eq(None::<Vec<u8>>),
                    idempotency_keys::created_at.eq(diesel::dsl::now),
                ))
                .execute(self.conn())
                .await
                .store_context("renewing an expired idempotency key")?;
            return Ok(Claim::Claimed);
        }
        if fingerprint != key.fingerprint {
            return Ok(Claim::Reused);
        }
        // A committed claim always has its reply (`complete` runs before the commit).
        body.map(|body| Claim::Replay(Reply(body)))
            .ok_or_else(|| corrupt("idempotency key", "committed without a reply"))
    }

    async fn complete(&mut self, key: &IdempotencyKey, reply: &Reply) -> Result<(), StoreError> {
        let updated = diesel::update(idempotency_keys::table.find((&key.scope, &key.key)))
            .set(idempotency_keys::body.eq(Some(&reply.0)))
            .execute(self.conn())
            .await
            .store_context("storing an idempotent reply")?;
        if updated == 1 { Ok(()) } else { Err(corrupt("idempotency key", "completed without a claim")) }
    }

    async fn delete_expired(&mut self, limit: u32) -> Result<u64, StoreError> {
        let ttl_secs = i64::try_from(self.key_ttl.as_secs()).unwrap_or(i64::MAX);
        let deleted: i64 = diesel::select(delete_expired_idempotency_keys(ttl_secs, i64::from(limit)))
            .get_result(self.conn())
            .await
            .store_context("deleting expired idempotency keys")?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;

    use crate::fixtures::{count, fixture};

    fn idempotency_key(fingerprint: u8) -> application::ports::IdempotencyKey {
        application::ports::IdempotencyKey { scope: "user:1".into(), key: "k".into(), fingerprint: vec![fingerprint] }
    }

    #[tokio::test]
    async fn a_second_claim_of_a_key_waits_for_the_first_and_replays_its_commit() {
        use application::ports::{Claim, Reply};
        let f = fixture().await;
        let mut first = f.uow.begin().await.unwrap();
        assert_eq!(first.idempotency().claim(&idempotency_key(1)).await.unwrap(), Claim::Claimed);

        let uow = f.uow.clone();
        let second = tokio::spawn(async move {
            let mut work = uow.begin().await.unwrap();
            let claim = work.idempotency().claim(&idempotency_key(1)).await.unwrap();
            work.rollback().await.unwrap();
            claim
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second claim waits while the first holds the key");
        let reply = Reply(b"{\"ok\":true}".to_vec());
        first.idempotency().complete(&idempotency_key(1), &reply).await.unwrap();
        first.commit().await.unwrap();
        assert_eq!(second.await.unwrap(), Claim::Replay(reply));

        // The same key with another fingerprint is refused.
        let mut other = f.uow.begin().await.unwrap();
        assert_eq!(other.idempotency().claim(&idempotency_key(2)).await.unwrap(), Claim::Reused);
        other.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn a_rolled_back_claim_leaves_the_key_free_and_expired_keys_are_deleted() {
        use application::ports::Claim;
        let f = fixture().await;
        let mut first = f.uow.begin().await.unwrap();
        assert_eq!(first.idempotency().claim(&idempotency_key(1)).await.unwrap(), Claim::Claimed);
        first.rollback().await.unwrap();
        assert_eq!(count(&f.pool, "SELECT count(*) FROM idempotency_keys").await, 0, "nothing stored");
        let mut again = f.uow.begin().await.unwrap();
        assert_eq!(again.idempotency().claim(&idempotency_key(2)).await.unwrap(), Claim::Claimed);
        again.rollback().await.unwrap();

        let mut conn = f.pool.get().await.unwrap();
        diesel_async::SimpleAsyncConnection::batch_execute(
            &mut *conn,
            "INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) \
             SELECT 'user:' || g, 'k', '\\x00', '{}', now() - interval '2 days' FROM generate_series(1, 5) g; \
             INSERT INTO idempotency_keys (scope, key, fingerprint, body) VALUES ('user:9', 'k', '\\x00', '{}');",
        )
        .await
        .unwrap();
        drop(conn);
        let mut work = f.uow.begin().await.unwrap();
        assert_eq!(work.idempotency().delete_expired(3).await.unwrap(), 3, "a batch at most");
        assert_eq!(work.idempotency().delete_expired(100).await.unwrap(), 2);
        work.commit().await.unwrap();
        assert_eq!(count(&f.pool, "SELECT count(*) FROM idempotency_keys").await, 1, "the fresh key stays");
    }
}
