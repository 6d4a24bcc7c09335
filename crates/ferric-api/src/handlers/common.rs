//! Pieces the resource handlers share: microversion gates, `201 Created`
//! answers, request bodies, `fields` of a single-record GET, the document a
//! JSON patch edits, and the store's `NotFound`/`Duplicate` as Ironic words
//! them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_store::StoreError;
use http::Method;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ctx::{Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::version::{Version, MAX_MINOR};
use crate::view;

/// Duplicate labels of a record unique by name and UUID.
pub(super) const NAME_OR_UUID: &[(&str, &str)] = &[("name", "name"), ("uuid", "UUID")];
/// Duplicate labels of a record unique by UUID only.
pub(super) const UUID_ONLY: &[(&str, &str)] = &[("uuid", "UUID")];

/// Ironic hides a resource newer than the request: 404 for GET, 405 for
/// the other methods.
pub(super) fn gate(ctx: &Ctx, method: &Method, since: u16, what: &str) -> ApiResult<()> {
    if ctx.version.at_least(since) {
        Ok(())
    } else if method == Method::GET {
        Err(ApiError::NotFound(format!("The API version does not allow {what}")))
    } else {
        Err(ApiError::MethodNotAllowed(format!("The API version does not allow {what}")))
    }
}

/// `201 Created` with `Location: <base>/v1/<path>` and `body`.
pub(super) fn created(ctx: &Ctx, path: &str, body: Value) -> Response {
    let location = format!("{}/v1/{path}", ctx.base_url);
    (StatusCode::CREATED, [(http::header::LOCATION, location)], Json(body)).into_response()
}

/// A request body that must be a JSON object.
pub(super) fn body_object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(doc) => Ok(doc),
        _ => Err(ApiError::bad("The request body must be a JSON object")),
    }
}

/// 404 "`noun` `ident` could not be found.".
pub(super) fn not_found(noun: &str, ident: &str) -> ApiError {
    ApiError::NotFound(format!("{noun} {ident} could not be found."))
}

/// The store's `NotFound` as [`not_found`]; other errors as usual.
pub(super) fn or_not_found<'a>(
    noun: &'a str,
    ident: &'a str,
) -> impl FnOnce(StoreError) -> ApiError + 'a {
    move |error| match error {
        StoreError::NotFound { .. } => not_found(noun, ident),
        other => other.into(),
    }
}

/// `ident` as the UUID of a record found by UUID only: anything else names
/// no record (404).
pub(super) fn uuid_ident(noun: &str, ident: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(ident).map_err(|_| not_found(noun, ident))
}

/// The store's `Duplicate` on a field of `labels` (field, label) as 409
/// "`record` with `label` `value` already exists." — `record` with its
/// article, e.g. "A port"; other errors as usual.
pub(super) fn duplicate(
    record: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> impl Fn(StoreError) -> ApiError {
    move |error| match error {
        StoreError::Duplicate { kind, field, value } => {
            match labels.iter().find(|(name, _)| *name == field) {
                Some((_, label)) => {
                    ApiError::Conflict(format!("{record} with {label} {value} already exists."))
                }
                None => StoreError::Duplicate { kind, field, value }.into(),
            }
        }
        other => other.into(),
    }
}

/// `fields=` of a single-record GET (1.8), the only parameter taken; checked
/// against `table` once the query is known to hold nothing else.
pub(super) fn show_fields(
    params: &mut Params,
    ctx: &Ctx,
    table: &[(&str, u16)],
) -> ApiResult<Option<Vec<String>>> {
    let fields = params.take_fields(ctx)?;
    params.finish()?;
    view::check_selection(fields.as_deref(), table, ctx)?;
    Ok(fields)
}

/// Like [`show_fields`] for the resources whose single-record GET reads its
/// query as a listing's (paging and sorting parameters accepted, unused).
pub(super) fn show_fields_of_listing(
    params: &mut Params,
    ctx: &Ctx,
    table: &[(&str, u16)],
) -> ApiResult<Option<Vec<String>>> {
    let listing = Listing::parse(params, ctx, true)?;
    params.finish()?;
    view::check_selection(listing.fields.as_deref(), table, ctx)?;
    Ok(listing.fields)
}

/// A context that renders every field, to build the document a patch edits.
pub(super) fn newest_ctx() -> Ctx {
    Ctx { version: Version(MAX_MINOR), base_url: String::new() }
}

/// The `keys` of a rendered record: the document a patch edits.
pub(super) fn only(full: Value, keys: &[&str]) -> Map<String, Value> {
    match full {
        Value::Object(map) => map.into_iter().filter(|(k, _)| keys.contains(&k.as_str())).collect(),
        _ => Map::new(),
    }
}

/// How often a PATCH is re-applied after losing a race: a handler loops
/// `for _ in 0..PATCH_ATTEMPTS` over read, apply, conditional write (a lost
/// race, [`unless_stale`]'s `None`, goes round again), then answers
/// [`lost_races`].
pub(super) const PATCH_ATTEMPTS: usize = 5;

/// 409 "`noun` `ident` is being changed by others": every attempt of a
/// PATCH lost its race.
pub(super) fn lost_races(noun: &str, ident: &str) -> ApiError {
    ApiError::Conflict(format!("{noun} {ident} is being changed by others; please retry"))
}

/// A conditional write's result with a lost race (`Stale`) as `Ok(None)`.
pub(super) fn unless_stale<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Stale { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}
