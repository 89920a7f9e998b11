//! Keyset pagination, as both stores list webhooks and events: newest id first, a page
//! continuing before the last id of the previous one.

use hookd_core::store::Page;
use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

/// The query for `page`: `first` (binding `$1` limit) when it is the first page, else `later`
/// (binding `$1` limit and `$2` the id to continue before).
pub fn query<'q, DB>(
    first: &'q str,
    later: &'q str,
    page: &'q Page,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    match &page.before {
        None => sqlx::query(first).bind(i64::from(page.limit)),
        Some(before) => sqlx::query(later)
            .bind(i64::from(page.limit))
            .bind(before.as_str()),
    }
}
