//! A fake unit of work over mockall repositories, for the use-case tests.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{
    CouponRepository, IdempotencyRepository, MockClock, MockCouponRepository, MockIdempotencyRepository,
    MockOrderRepository, MockPaymentRepository, MockProductRepository, MockRankingRepository, MockUnitOfWork,
    MockUserRepository, OrderRepository, PaymentRepository, ProductRepository, RankingRepository, StoreError,
    UserRepository, Work,
};
use crate::ports::{MockOutboxRepository, OutboxRepository};

/// How a work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Committed,
    RolledBack,
}

/// Records how the work ended, readable after the use case has consumed it.
#[derive(Debug, Clone, Default)]
pub struct EndedCell(Arc<Mutex<Option<Ended>>>);

impl EndedCell {
    pub fn get(&self) -> Option<Ended> {
        *self.0.lock().unwrap()
    }

    fn set(&self, ended: Ended) {
        let mut slot = self.0.lock().unwrap();
        assert!(slot.is_none(), "a work was ended twice");
        *slot = Some(ended);
    }
}

/// A work whose repositories are mocks; repositories without expectations panic when
/// called, which is how the tests prove that nothing was written.
#[derive(Default)]
pub struct FakeWork {
    pub users: MockUserRepository,
    pub products: MockProductRepository,
    pub coupons: MockCouponRepository,
    pub orders: MockOrderRepository,
    pub payments: MockPaymentRepository,
    pub rankings: MockRankingRepository,
    pub idempotency: MockIdempotencyRepository,
    pub outbox: MockOutboxRepository,
    pub ended: EndedCell,
    pub commit_fails: bool,
}

impl FakeWork {
    /// A unit of work whose `begin` hands out this work once.
    pub fn into_uow(self) -> (Arc<MockUnitOfWork>, EndedCell) {
        let ended = self.ended.clone();
        let mut uow = MockUnitOfWork::new();
        uow.expect_begin().times(1).return_once(move || Ok(Box::new(self)));
        (Arc::new(uow), ended)
    }

    /// A unit of work whose `begin` hands out `first`, then `second`, once each.
    pub fn in_turn(first: Self, second: Self) -> (Arc<MockUnitOfWork>, EndedCell, EndedCell) {
        let (first_ended, second_ended) = (first.ended.clone(), second.ended.clone());
        let mut uow = MockUnitOfWork::new();
        let mut sequence = mockall::Sequence::new();
        uow.expect_begin().times(1).in_sequence(&mut sequence).return_once(move || Ok(Box::new(first)));
        uow.expect_begin().times(1).in_sequence(&mut sequence).return_once(move || Ok(Box::new(second)));
        (Arc::new(uow), first_ended, second_ended)
    }

    /// A unit of work whose `autocommit` hands out `session` once and whose `begin`
    /// then hands out `transaction` once.
    pub fn session_then_transaction(session: Self, transaction: Self) -> (Arc<MockUnitOfWork>, EndedCell, EndedCell) {
        let (session_ended, transaction_ended) = (session.ended.clone(), transaction.ended.clone());
        let mut uow = MockUnitOfWork::new();
        uow.expect_autocommit().times(1).return_once(move || Ok(Box::new(session)));
        uow.expect_begin().times(1).return_once(move || Ok(Box::new(transaction)));
        (Arc::new(uow), session_ended, transaction_ended)
    }

    /// A unit of work whose `autocommit` hands out this work once.
    pub fn into_reader(self) -> (Arc<MockUnitOfWork>, EndedCell) {
        let ended = self.ended.clone();
        let mut uow = MockUnitOfWork::new();
        uow.expect_autocommit().times(1).return_once(move || Ok(Box::new(self)));
        (Arc::new(uow), ended)
    }
}

#[async_trait]
impl Work for FakeWork {
    fn users(&mut self) -> &mut dyn UserRepository {
        &mut self.users
    }
    fn products(&mut self) -> &mut dyn ProductRepository {
        &mut self.products
    }
    fn coupons(&mut self) -> &mut dyn CouponRepository {
        &mut self.coupons
    }
    fn orders(&mut self) -> &mut dyn OrderRepository {
        &mut self.orders
    }
    fn payments(&mut self) -> &mut dyn PaymentRepository {
        &mut self.payments
    }
    fn rankings(&mut self) -> &mut dyn RankingRepository {
        &mut self.rankings
    }
    fn idempotency(&mut self) -> &mut dyn IdempotencyRepository {
        &mut self.idempotency
    }
    fn outbox(&mut self) -> &mut dyn OutboxRepository {
        &mut self.outbox
    }
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        if self.commit_fails {
            self.ended.set(Ended::RolledBack);
            return Err(StoreError::Unavailable(anyhow::anyhow!("connection lost at commit")));
        }
        self.ended.set(Ended::Committed);
        Ok(())
    }
    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.ended.set(Ended::RolledBack);
        Ok(())
    }
}

pub fn fixed_clock(now: DateTime<Utc>) -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now);
    Arc::new(clock)
}
