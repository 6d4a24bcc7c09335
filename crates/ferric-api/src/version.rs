//! Microversions: what a request asked for, and the headers every response
//! carries. No header means 1.1, as in Ironic; `latest` means the maximum.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The lowest minor version served.
pub const MIN_MINOR: u16 = 1;
/// The highest minor version served.
pub const MAX_MINOR: u16 = 115;

pub const MIN_VERSION: &str = "1.1";
pub const MAX_VERSION: &str = "1.115";

const LEGACY_HEADER: &str = "x-openstack-ironic-api-version";
const STANDARD_HEADER: &str = "openstack-api-version";

/// The microversion a request is served at (the minor number; major is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16);

impl Version {
    /// Whether the request is at `minor` or later.
    pub fn at_least(self, minor: u16) -> bool {
        self.0 >= minor
    }

    /// 406 unless the request is at `minor` or later.
    pub fn require(self, minor: u16, what: &str) -> Result<(), ApiError> {
        if self.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError::NotAcceptable(format!(
                "{what} requires API version 1.{minor} or later; the request used 1.{}",
                self.0
            )))
        }
    }

    /// 404 for an endpoint newer than the request (how Ironic hides them).
    pub fn require_endpoint(self, minor: u16) -> Result<(), ApiError> {
        if self.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError::NotFound("The resource could not be found.".into()))
        }
    }
}

/// Reads the requested version from the headers.
pub fn negotiate(headers: &HeaderMap) -> Result<Version, ApiError> {
    let standard =
        headers.get(STANDARD_HEADER).and_then(|value| value.to_str().ok()).and_then(|value| {
            // "baremetal 1.N", possibly among other services, comma separated.
            value.split(',').find_map(|part| {
                let mut words = part.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(service), Some(version)) if service.eq_ignore_ascii_case("baremetal") => {
                        Some(version.to_owned())
                    }
                    _ => None,
                }
            })
        });
    let requested = match standard {
        Some(version) => Some(version),
        None => match headers.get(LEGACY_HEADER) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| {
                        ApiError::NotAcceptable("Invalid value for the API version header".into())
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        },
    };
    let Some(requested) = requested else {
        return Ok(Version(MIN_MINOR));
    };
    if requested.eq_ignore_ascii_case("latest") {
        return Ok(Version(MAX_MINOR));
    }
    let invalid = || {
        ApiError::NotAcceptable(format!(
            "Invalid value for X-OpenStack-Ironic-API-Version header: {requested}"
        ))
    };
    let (major, minor) = requested.split_once('.').ok_or_else(invalid)?;
    let major: u16 = major.parse().map_err(|_| invalid())?;
    let minor: u16 = minor.parse().map_err(|_| invalid())?;
    if major != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
        return Err(ApiError::NotAcceptable(format!(
            "Version {requested} was requested but the minor version is not supported by this \
             service. The supported version range is: [{MIN_VERSION}, {MAX_VERSION}]."
        )));
    }
    Ok(Version(minor))
}

/// Middleware: negotiates the version (406 on failure), stores it in the
/// request's extensions, and sets the version and request-id headers on
/// every response.
pub async fn version_layer(mut request: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let negotiated = negotiate(request.headers());
    let mut response = match negotiated {
        Ok(version) => {
            request.extensions_mut().insert(version);
            let mut response = next.run(request).await;
            if let Ok(value) = HeaderValue::from_str(&format!("1.{}", version.0)) {
                response.headers_mut().insert(LEGACY_HEADER, value);
            }
            response
        }
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("x-openstack-ironic-api-minimum-version", HeaderValue::from_static(MIN_VERSION));
    headers.insert("x-openstack-ironic-api-maximum-version", HeaderValue::from_static(MAX_VERSION));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("openstack-request-id", value.clone());
        headers.insert("x-openstack-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn negotiation_follows_ironic() {
        assert_eq!(negotiate(&headers(&[])).ok(), Some(Version(1)));
        assert_eq!(negotiate(&headers(&[(LEGACY_HEADER, "1.50")])).ok(), Some(Version(50)));
        assert_eq!(
            negotiate(&headers(&[(LEGACY_HEADER, "latest")])).ok(),
            Some(Version(MAX_MINOR))
        );
        assert_eq!(
            negotiate(&headers(&[(STANDARD_HEADER, "baremetal 1.89"), (LEGACY_HEADER, "1.2")]))
                .ok(),
            Some(Version(89))
        );
        for bad in ["1.200", "2.1", "1.0", "one", "1.x", ""] {
            let mut map = HeaderMap::new();
            map.insert(LEGACY_HEADER, HeaderValue::from_str(bad).expect("header"));
            assert!(matches!(negotiate(&map), Err(ApiError::NotAcceptable(_))), "{bad}");
        }
    }
}
