//! `?limit=&cursor=` paging: newest first, the cursor is the last id of the previous page.

use serde::{Deserialize, Serialize};

use hookd_core::store::Page;

use crate::error::ApiError;

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 1000;

/// A page of results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListOut<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The paging part of a list query, as received.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1 to 1000 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// Parses into a store page that asks for one extra row, to know whether there is a next page.
    /// `valid_cursor` checks the cursor is an id of the listed kind.
    pub fn parse(&self, valid_cursor: impl Fn(&str) -> bool) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_param(
                        "limit",
                        "must be an integer from 1 to 1000",
                    ))
                }
            },
        };
        let before = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) if valid_cursor(c) => Some(c.to_owned()),
            Some(_) => {
                return Err(ApiError::bad_param(
                    "cursor",
                    "is not a cursor from this list",
                ))
            }
        };
        Ok(Page {
            limit: limit + 1,
            before,
        })
    }
}

/// Cuts the extra row off and turns it into the next cursor.
pub fn paginate<R, T>(
    mut rows: Vec<R>,
    page: &Page,
    id: impl Fn(&R) -> String,
    out: impl Fn(R) -> T,
) -> ListOut<T> {
    let wanted = (page.limit - 1) as usize;
    let next_cursor = if rows.len() > wanted {
        rows.truncate(wanted);
        rows.last().map(&id)
    } else {
        None
    };
    ListOut {
        data: rows.into_iter().map(out).collect(),
        next_cursor,
    }
}
