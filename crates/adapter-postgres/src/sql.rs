//! Hand-written statements that are prepared once per connection.
//!
//! diesel's `sql_query` marks every statement unsafe to cache, so PostgreSQL parses
//! and plans it on every execution; for the multi-part statements of the hot path (a
//! charge, a coupon issue, an order) that cost more than running them. A [`Statement`]
//! is a `&'static str`, so its text cannot depend on the request, and diesel-async
//! keeps it prepared, keyed by its text and bind types, like a statement built with the
//! DSL. Every hand-written statement of the adapter goes through it.
//!
//! The text uses `$1`, `$2`, … as usual. diesel only lets a fragment add a bind
//! together with its placeholder, so the placeholders of the binds are appended, in
//! order, inside a closing SQL comment (`-- parameters: $1 $2 …`): the k-th bind is
//! `$k`, which is what the text refers to.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// A fixed SQL text with `$n` placeholders; bind them in order with [`Statement::bind`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement(pub(crate) &'static str);

/// A statement with one more bind (the next `$n`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bind<Q, V, ST> {
    query: Q,
    value: V,
    sql_type: PhantomData<ST>,
}

impl Statement {
    /// Binds `$1`.
    pub(crate) fn bind<ST, V>(self, value: V) -> Bind<Self, V, ST> {
        Bind { query: self, value, sql_type: PhantomData }
    }
}

impl<Q, V, ST> Bind<Q, V, ST> {
    /// Binds the next `$n`.
    pub(crate) fn bind<ST2, V2>(self, value: V2) -> Bind<Self, V2, ST2> {
        Bind { query: self, value, sql_type: PhantomData }
    }
}

impl QueryFragment<Pg> for Statement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.0);
        out.push_sql("\n-- parameters:");
        Ok(())
    }
}

impl<Q, V, ST> QueryFragment<Pg> for Bind<Q, V, ST>
where
    Q: QueryFragment<Pg>,
    V: ToSql<ST, Pg>,
    Pg: HasSqlType<ST>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(" ");
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl QueryId for Statement {
    type QueryId = ();
    // Not static: the cache keys it by its text (and its binds' types).
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST> QueryId for Bind<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement {
    type SqlType = Untyped;
}

impl<Q, V, ST> Query for Bind<Q, V, ST> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    #[test]
    fn the_kth_bind_is_dollar_k_and_the_text_is_kept() {
        let query = Statement("SELECT $2 || $1").bind::<Text, _>("a").bind::<BigInt, _>(7_i64);
        let sql = debug_query::<Pg, _>(&query).to_string();
        assert!(sql.starts_with("SELECT $2 || $1\n-- parameters: $1 $2"), "{sql}");
    }
}
