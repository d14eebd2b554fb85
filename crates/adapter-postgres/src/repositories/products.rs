use application::StoreError;
use application::ports::ProductRepository;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::ProductId;
use domain::product::{NewProduct, Product, Quantity};

use crate::error::StoreContext;
use crate::functions::move_stock;
use crate::records::ProductRow;
use crate::schema::products;
use crate::work::PgWork;

fn split(lines: &[(ProductId, Quantity)]) -> (Vec<i64>, Vec<i32>) {
    lines.iter().map(|(id, quantity)| (id.get(), quantity.get())).unzip()
}

#[async_trait]
impl ProductRepository for PgWork {
    async fn create(&mut self, product: &NewProduct) -> Result<Product, StoreError> {
        diesel::insert_into(products::table)
            .values((
                products::name.eq(product.name.as_str()),
                products::price.eq(product.price.krw()),
                products::stock.eq(product.stock.get()),
            ))
            .returning(ProductRow::as_returning())
            .get_result(self.conn())
            .await
            .store_context("inserting a product")?
            .into_domain()
    }

    async fn page(&mut self, after: Option<ProductId>, limit: u16) -> Result<Vec<Product>, StoreError> {
        products::table
            .filter(products::id.gt(after.map_or(0, ProductId::get)))
            .order(products::id.asc())
            .limit(i64::from(limit))
            .select(ProductRow::as_select())
            .load(self.conn())
            .await
            .store_context("reading a page of products")?
            .into_iter()
            .map(ProductRow::into_domain)
            .collect()
    }

    async fn lock_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        // ORDER BY before the row-locking clause: PostgreSQL locks rows as the sorted
        // scan returns them, so every work takes these locks in ascending id.
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        products::table
            .filter(products::id.eq_any(ids))
            .order(products::id.asc())
            .select(ProductRow::as_select())
            .for_no_key_update()
            .load(self.conn())
            .await
            .store_context("locking products")?
            .into_iter()
            .map(ProductRow::into_domain)
            .collect()
    }

    async fn find_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        products::table
            .filter(products::id.eq_any(ids))
            .order(products::id.asc())
            .select(ProductRow::as_select())
            .load(self.conn())
            .await
            .store_context("reading products")?
            .into_iter()
            .map(ProductRow::into_domain)
            .collect()
    }

    async fn take_stock(&mut self, lines: &[(ProductId, Quantity)]) -> Result<(), StoreError> {
        let (ids, quantities) = split(lines);
        // One statement for every line; the CHECK (stock >= 0) refuses a shortfall.
        diesel::select(move_stock(ids, quantities, -1))
            .execute(self.conn())
            .await
            .store_context("taking stock")
            .map(drop)
    }

    async fn return_stock(&mut self, lines: &[(ProductId, Quantity)]) -> Result<(), StoreError> {
        let (ids, quantities) = split(lines);
        diesel::select(move_stock(ids, quantities, 1))
            .execute(self.conn())
            .await
            .store_context("returning stock")
            .map(drop)
    }
}
