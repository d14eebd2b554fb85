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
