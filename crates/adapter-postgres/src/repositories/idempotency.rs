use application::StoreError;
use application::ports::{Claim, IdempotencyKey, IdempotencyRepository, StoredReply};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text};
use diesel_async::RunQueryDsl;

use crate::error::{StoreContext, corrupt, is_lock_timeout};
use crate::schema::idempotency_keys;
use crate::sql::Statement;
use crate::work::PgWork;

#[derive(QueryableByName)]
struct Existing {
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::SmallInt>)]
    status: Option<i16>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Bytea>)]
    body: Option<Vec<u8>>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    expired: bool,
}

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
        let existing: Existing = Statement(
            "SELECT fingerprint, status, body, created_at < now() - make_interval(secs => $3) AS expired \
             FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE",
        )
        .bind::<Text, _>(&key.scope)
        .bind::<Text, _>(&key.key)
        .bind::<BigInt, _>(ttl_secs)
        .get_result(self.conn())
        .await
        .store_context("reading an idempotency key")?;
        if existing.expired {
            // Past its lifetime the key is free again: this request takes it over.
            diesel::update(idempotency_keys::table.find((&key.scope, &key.key)))
                .set((
                    idempotency_keys::fingerprint.eq(&key.fingerprint),
                    idempotency_keys::status.eq(None::<i16>),
                    idempotency_keys::body.eq(None::<Vec<u8>>),
                    idempotency_keys::created_at.eq(diesel::dsl::now),
                ))
                .execute(self.conn())
                .await
                .store_context("renewing an expired idempotency key")?;
            return Ok(Claim::Claimed);
        }
        if existing.fingerprint != key.fingerprint {
            return Ok(Claim::Reused);
        }
        match (existing.status, existing.body) {
            (Some(status), Some(body)) => Ok(Claim::Replay(StoredReply {
                status: u16::try_from(status).map_err(|e| corrupt("idempotency status", e))?,
                body,
            })),
            // A committed claim always has its reply (the table's CHECK and `complete`).
            _ => Err(corrupt("idempotency key", "committed without a reply")),
        }
    }

    async fn complete(&mut self, key: &IdempotencyKey, reply: &StoredReply) -> Result<(), StoreError> {
        let status = i16::try_from(reply.status).map_err(|e| corrupt("idempotency status", e))?;
        let updated = diesel::update(idempotency_keys::table.find((&key.scope, &key.key)))
            .set((idempotency_keys::status.eq(Some(status)), idempotency_keys::body.eq(Some(&reply.body))))
            .execute(self.conn())
            .await
            .store_context("storing an idempotent reply")?;
        if updated == 1 { Ok(()) } else { Err(corrupt("idempotency key", "completed without a claim")) }
    }

    async fn delete_expired(&mut self, limit: u32) -> Result<u64, StoreError> {
        let ttl_secs = i64::try_from(self.key_ttl.as_secs()).unwrap_or(i64::MAX);
        let deleted = Statement(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN ( \
               SELECT scope, key FROM idempotency_keys \
               WHERE created_at < now() - make_interval(secs => $1) \
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<BigInt, _>(ttl_secs)
        .bind::<BigInt, _>(i64::from(limit))
        .execute(self.conn())
        .await
        .store_context("deleting expired idempotency keys")?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
