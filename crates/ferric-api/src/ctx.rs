//! Request plumbing shared by every handler: the negotiated version and base
//! URL ([`Ctx`]), strict query parameters ([`Params`]), pagination and JSON
//! bodies ([`Body`]).

use axum::extract::{FromRequest, FromRequestParts, Request};
use ferric_store::{Page, SortDir};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::version::Version;
use crate::ApiState;

/// The most items one page returns (`[api]max_limit` in Ironic).
pub const MAX_LIMIT: u32 = 1000;

/// Who is asking, at which version, and where links should point.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub version: Version,
    /// `http://host:port` without a trailing slash.
    pub base_url: String,
}

impl FromRequestParts<ApiState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let version = parts.extensions.get::<Version>().copied().unwrap_or(Version(1));
        let base_url = match &state.config.public_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("localhost:6385");
                format!("http://{host}")
            }
        };
        Ok(Ctx { version, base_url })
    }
}

impl Ctx {
    /// `[{"href": base/v1/<path>, "rel": "self"}, {"href": base/<path>, "rel": "bookmark"}]`.
    pub fn links(&self, path: &str) -> Value {
        serde_json::json!([
            {"href": format!("{}/v1/{path}", self.base_url), "rel": "self"},
            {"href": format!("{}/{path}", self.base_url), "rel": "bookmark"},
        ])
    }
}

/// Query parameters, consumed one by one; whatever is left over at the end
/// is an unknown argument (400), as in Ironic.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// The pairs as received, for rebuilding `next` links.
    original: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|error| ApiError::bad(format!("Invalid query string: {error}")))?;
        Ok(Params { original: pairs.clone(), pairs })
    }
}

impl Params {
    pub fn take(&mut self, key: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(name, _)| name == key)?;
        let (_, value) = self.pairs.remove(index);
        // Repeated keys: the last one wins; drop the rest.
        let mut value = value;
        while let Some(index) = self.pairs.iter().position(|(name, _)| name == key) {
            value = self.pairs.remove(index).1;
        }
        Some(value)
    }

    /// Like [`Params::take`], 406 if present below `minor`.
    pub fn take_since(
        &mut self,
        key: &str,
        ctx: &Ctx,
        minor: u16,
    ) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            Some(value) => {
                ctx.version.require(minor, &format!("The query parameter {key}"))?;
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        self.take(key).map(|value| parse_bool(key, &value)).transpose()
    }

    pub fn take_bool_since(
        &mut self,
        key: &str,
        ctx: &Ctx,
        minor: u16,
    ) -> Result<Option<bool>, ApiError> {
        self.take_since(key, ctx, minor)?.map(|value| parse_bool(key, &value)).transpose()
    }

    /// `fields` (1.8): the comma-separated names, blanks dropped.
    pub fn take_fields(&mut self, ctx: &Ctx) -> Result<Option<Vec<String>>, ApiError> {
        Ok(self.take_since("fields", ctx, 8)?.map(|text| {
            text.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect()
        }))
    }

    pub fn take_uuid(&mut self, key: &str) -> Result<Option<Uuid>, ApiError> {
        self.take(key).map(|value| parse_uuid(key, &value)).transpose()
    }

    /// 400 if anything was not consumed.
    pub fn finish(&self) -> Result<(), ApiError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::bad(format!("Unknown argument: \"{name}\""))),
        }
    }

    /// The original query without `limit` and `marker`, for `next` links.
    pub fn carried_over(&self) -> Vec<(String, String)> {
        self.original
            .iter()
            .filter(|(name, _)| name != "limit" && name != "marker")
            .cloned()
            .collect()
    }
}

pub fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" | "t" => Ok(true),
        "false" | "0" | "no" | "off" | "n" | "f" => Ok(false),
        _ => Err(ApiError::bad(format!("Invalid value for {key}: \"{value}\" is not a boolean"))),
    }
}

pub fn parse_uuid(key: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::bad(format!("Expected a UUID for {key} but received {value}.")))
}

/// `limit`, `marker`, `sort_key`, `sort_dir`, `fields`, `detail`.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub page: Page,
    pub sort_key: Option<String>,
    pub fields: Option<Vec<String>>,
    pub detail: bool,
    /// The `limit` the page was cut at (the next link is due when full).
    pub limit: u32,
    carried: Vec<(String, String)>,
}

impl Listing {
    pub fn parse(
        params: &mut Params,
        ctx: &Ctx,
        marker_is_uuid: bool,
    ) -> Result<Listing, ApiError> {
        let carried = params.carried_over();
        let limit = match params.take("limit") {
            None => MAX_LIMIT,
            Some(text) => {
                let limit: i64 = text.parse().map_err(|_| {
                    ApiError::bad(format!("Invalid limit \"{text}\": not an integer"))
                })?;
                if limit <= 0 {
                    return Err(ApiError::bad("Limit must be positive"));
                }
                u32::try_from(limit).unwrap_or(MAX_LIMIT).min(MAX_LIMIT)
            }
        };
        let marker = match params.take("marker") {
            Some(text) if marker_is_uuid => Some(parse_uuid("marker", &text)?),
            _ => None,
        };
        let sort_dir = match params.take("sort_dir").as_deref() {
            None | Some("asc") => SortDir::Asc,
            Some("desc") => SortDir::Desc,
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
                )))
            }
        };
        let sort_key = params.take("sort_key");
        let fields = params.take_fields(ctx)?;
        let detail = params.take_bool_since("detail", ctx, 43)?.unwrap_or(false);
        Ok(Listing {
            page: Page { limit: Some(limit), marker, sort_dir },
            sort_key,
            fields,
            detail,
            limit,
            carried,
        })
    }

    /// The fields a listing shows: the `fields` selection, every field when
    /// `detail`, or else `defaults`.
    pub fn selection(&self, detail: bool, defaults: &[&str]) -> Option<Vec<String>> {
        match (&self.fields, detail) {
            (Some(fields), _) => Some(fields.clone()),
            (None, true) => None,
            (None, false) => Some(defaults.iter().map(|f| (*f).to_owned()).collect()),
        }
    }

    /// The `next` link for a page of `count` items ending at `last_marker`,
    /// if the page is full.
    pub fn next_link(
        &self,
        ctx: &Ctx,
        resource_path: &str,
        count: usize,
        last_marker: Option<String>,
    ) -> Option<String> {
        if (count as u64) < u64::from(self.limit) {
            return None;
        }
        let marker = last_marker?;
        let mut query = self.carried.clone();
        query.push(("limit".into(), self.limit.to_string()));
        query.push(("marker".into(), marker));
        let encoded = serde_urlencoded::to_string(&query).unwrap_or_default();
        Some(format!("{}/v1/{resource_path}?{encoded}", ctx.base_url))
    }

    /// Adds `next` to a collection body when the page is full.
    pub fn finish_collection(
        &self,
        ctx: &Ctx,
        resource_path: &str,
        key: &str,
        items: Vec<Value>,
        last_marker: Option<String>,
    ) -> Value {
        let next = self.next_link(ctx, resource_path, items.len(), last_marker);
        let mut body = serde_json::Map::new();
        body.insert(key.to_owned(), Value::Array(items));
        if let Some(next) = next {
            body.insert("next".into(), Value::String(next));
        }
        Value::Object(body)
    }
}

/// A JSON request body, with Ironic-style errors for bad JSON and size.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("Request body is too large".into())
            } else {
                ApiError::bad(format!("Could not read the request body: {rejection}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|error| ApiError::bad(format!("Invalid JSON in the request body: {error}")))
    }
}
