use application::StoreError;
use application::ports::{Claim, IdempotencyKey, IdempotencyRepository, Reply};
use async_trait::async_trait;
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::{StoreContext, corrupt, is_lock_timeout};
use crate::functions::{delete_expired_idempotency_keys, lock_idempotency_key};
use crate::schema::idempotency_keys;
use crate::work::PgWork;

impl PgWork {
    /// One attempt at [`IdempotencyRepository::claim`]; `None` when the key vanished
    /// between the insert and the read.
    async fn claim_once(&mut self, key: &IdempotencyKey) -> Result<Option<Claim>, StoreError> {
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
            Ok(1) => return Ok(Some(Claim::Claimed)),
            Ok(_) => {}
            Err(error) if is_lock_timeout(&error) => return Ok(Some(Claim::InFlight)),
            Err(error) => return Err(error).store_context("claiming an idempotency key"),
        }
        let ttl_secs = i64::try_from(self.key_ttl.as_secs()).unwrap_or(i64::MAX);
        let found: Option<(Vec<u8>, Option<Vec<u8>>, bool)> =
            diesel::select(lock_idempotency_key(&key.scope, &key.key, ttl_secs))
                .get_result(self.conn())
                .await
                .optional()
                .store_context("reading an idempotency key")?;
        let Some((fingerprint, body, expired)) = found else { return Ok(None) };
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
            return Ok(Some(Claim::Claimed));
        }
        if fingerprint != key.fingerprint {
            return Ok(Some(Claim::Reused));
        }
        // A committed claim always has its reply (`complete` runs before the commit).
        body.map(|body| Some(Claim::Replay(Reply(body))))
            .ok_or_else(|| corrupt("idempotency key", "committed without a reply"))
    }
}

#[async_trait]
impl IdempotencyRepository for PgWork {
    async fn claim(&mut self, key: &IdempotencyKey) -> Result<Claim, StoreError> {
        // The purge may delete the key between the insert that met it and the read that
        // locks it: the key is then free, and the next insert takes it. Twice in a row
        // takes a purge racing a concurrent claim of the same key; that one is in flight.
        for _ in 0..2 {
            if let Some(claim) = self.claim_once(key).await? {
                return Ok(claim);
            }
        }
        Ok(Claim::InFlight)
    }

    async fn stored(&mut self, key: &IdempotencyKey) -> Result<Option<Reply>, StoreError> {
        // The lifetime is measured on this process's clock here; a key within a clock
        // skew of its end may replay or not, as it may anyway.
        let born_after = Utc::now() - chrono::Duration::from_std(self.key_ttl).unwrap_or(chrono::Duration::MAX);
        let body: Option<Option<Vec<u8>>> = idempotency_keys::table
            .find((&key.scope, &key.key))
            .filter(idempotency_keys::fingerprint.eq(&key.fingerprint))
            .filter(idempotency_keys::created_at.gt(born_after))
            .select(idempotency_keys::body)
            .first(self.conn())
            .await
            .optional()
            .store_context("reading an idempotent reply")?;
        Ok(body.flatten().map(Reply))
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

    #[tokio::test]
    async fn a_key_deleted_while_it_is_being_claimed_is_claimed_afresh_not_an_error() {
        use application::ports::Claim;
        use diesel_async::SimpleAsyncConnection;
        let f = fixture().await;
        let mut purger = f.pool.get().await.unwrap();
        purger
            .batch_execute(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, body) VALUES ('user:1', 'k', '\\x01', '{}'); \
                 BEGIN; SELECT 1 FROM idempotency_keys WHERE scope = 'user:1' AND key = 'k' FOR UPDATE;",
            )
            .await
            .unwrap();
        // The claim's insert meets the stored key, then its locking read waits for the
        // purger, which deletes the key meanwhile.
        let uow = f.uow.clone();
        let claim = tokio::spawn(async move {
            let mut work = uow.begin().await.unwrap();
            let claim = work.idempotency().claim(&idempotency_key(1)).await;
            work.rollback().await.unwrap();
            claim
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!claim.is_finished(), "the claim waits for the purger's lock");
        purger.batch_execute("DELETE FROM idempotency_keys WHERE scope = 'user:1'; COMMIT;").await.unwrap();
        assert_eq!(claim.await.unwrap().unwrap(), Claim::Claimed, "the key was free: a fresh run");
    }

    #[tokio::test]
    async fn a_stored_reply_is_read_without_claiming_and_only_for_its_fingerprint_within_its_lifetime() {
        use application::ports::Reply;
        let f = fixture().await;
        let mut conn = f.pool.get().await.unwrap();
        diesel_async::SimpleAsyncConnection::batch_execute(
            &mut *conn,
            "INSERT INTO idempotency_keys (scope, key, fingerprint, body) VALUES ('user:1', 'k', '\\x01', 'done'); \
             INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) \
             VALUES ('user:1', 'old', '\\x01', 'done', now() - interval '2 days'); \
             INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES ('user:1', 'running', '\\x01');",
        )
        .await
        .unwrap();
        let mut read = f.uow.autocommit().await.unwrap();
        let key = |name: &str, fingerprint: u8| application::ports::IdempotencyKey {
            key: name.into(),
            ..idempotency_key(fingerprint)
        };
        assert_eq!(read.idempotency().stored(&key("k", 1)).await.unwrap(), Some(Reply(b"done".to_vec())));
        assert_eq!(read.idempotency().stored(&key("k", 2)).await.unwrap(), None, "another request's");
        assert_eq!(read.idempotency().stored(&key("old", 1)).await.unwrap(), None, "past its lifetime");
        assert_eq!(read.idempotency().stored(&key("running", 1)).await.unwrap(), None, "no reply yet");
        assert_eq!(read.idempotency().stored(&key("none", 1)).await.unwrap(), None);
    }
}
