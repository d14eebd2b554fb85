//! The catalog: listing products page by page, and adding products.

use std::sync::Arc;

use domain::ProductId;
use domain::product::{NewProduct, Product};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::paging::{one_page, read_limit};
use crate::ports::{Ports, StoreError, UnitOfWork, finish};

/// Adds a product to the catalog.
#[derive(Clone)]
pub struct CreateProduct {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(CreateProduct);

impl CreateProduct {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip_all)]
    pub async fn execute(&self, product: NewProduct) -> Result<Product, StoreError> {
        let mut work = self.uow.begin().await?;
        let created = work.products().create(&product).await;
        finish(work, created).await
    }

    /// [`Self::execute`], at most once per idempotency key.
    #[tracing::instrument(skip_all)]
    pub async fn execute_keyed(
        &self,
        product: NewProduct,
        key: Option<Key<Product>>,
    ) -> Result<Answer<Product>, KeyedError<StoreError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(product).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let created = work.products().create(&product).await;
        work.finish(created).await
    }
}

/// One page of products in ascending id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    pub products: Vec<Product>,
    /// The last id of this page when another page follows.
    pub next_after: Option<ProductId>,
}

/// Lists products by keyset paging: a page is the `limit` products after a given id,
/// so following the pages from the start visits every product that existed when the
/// walk began exactly once and in id order, even while products are being added (a
/// product added during the walk appears when its id is still ahead of the walk).
#[derive(Clone)]
pub struct ListProducts {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(ListProducts);

impl ListProducts {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, after: Option<ProductId>, limit: u16) -> Result<ProductPage, StoreError> {
        let mut work = self.uow.autocommit().await?;
        let outcome = work.products().page(after, read_limit(limit)).await.map(|products| {
            let (products, next_after) = one_page(products, limit, |p| p.id);
            ProductPage { products, next_after }
        });
        finish(work, outcome).await
    }
}

/// The catalog's use cases.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub create: CreateProduct,
    pub list: ListProducts,
}

impl Catalog {
    pub fn new(ports: &Ports) -> Self {
        Self { create: CreateProduct::new(ports.uow.clone()), list: ListProducts::new(ports.uow.clone()) }
    }
}

#[cfg(test)]
mod tests {
    use domain::testing::product;

    use super::*;
    use crate::usecases::test_support::FakeWork;

    #[tokio::test]
    async fn a_full_page_points_at_its_last_product() {
        let mut work = FakeWork::default();
        work.products
            .expect_page()
            .withf(|after, limit| *after == ProductId::new(4).ok() && *limit == 3)
            .returning(|_, _| Ok(vec![product(5, 0, 1), product(6, 0, 1), product(7, 0, 1)]));
        let (uow, _) = work.into_reader();
        let page = ListProducts::new(uow).execute(ProductId::new(4).ok(), 2).await.unwrap();
        assert_eq!(page.products.iter().map(|p| p.id.get()).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(page.next_after, ProductId::new(6).ok());
    }

    #[tokio::test]
    async fn the_last_page_has_no_next() {
        let mut work = FakeWork::default();
        work.products.expect_page().returning(|_, _| Ok(vec![product(1, 0, 1), product(2, 0, 1)]));
        let (uow, _) = work.into_reader();
        let page = ListProducts::new(uow).execute(None, 2).await.unwrap();
        assert_eq!(page.products.len(), 2);
        assert_eq!(page.next_after, None);
    }
}
