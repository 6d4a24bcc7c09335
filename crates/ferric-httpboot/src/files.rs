//! Boot files from a directory, with `ETag`/`If-None-Match`, `Range` (one
//! range) and `HEAD`. Paths never leave the root.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The file under `root` that `relative` names, or `None` if it would leave
/// the root (`..`, absolute paths, symlinks pointing outside).
pub fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let canonical_root = root.canonicalize().ok()?;
    let canonical = path.canonicalize().ok()?;
    canonical.starts_with(&canonical_root).then_some(canonical)
}

/// A `Range` header no part of the file satisfies (answered with 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A parsed `Range: bytes=...` header against a file of `size` bytes:
/// `Ok(None)` for no (or an ignorable) header.
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(value) = value else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        // Multiple ranges: serve the whole file, which RFC 9110 allows.
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else { return Ok(None) };
    let (start, end) = match (start.trim(), end.trim()) {
        ("", "") => return Ok(None),
        ("", suffix) => {
            let length: u64 = suffix.parse().map_err(|_| Unsatisfiable)?;
            if length == 0 || size == 0 {
                return Err(Unsatisfiable);
            }
            (size.saturating_sub(length), size - 1)
        }
        (start, "") => (start.parse().map_err(|_| Unsatisfiable)?, size.saturating_sub(1)),
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| Unsatisfiable)?;
            let end: u64 = end.parse().map_err(|_| Unsatisfiable)?;
            (start, end.min(size.saturating_sub(1)))
        }
    };
    if start >= size || start > end {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Serves `relative` from `root` for `method` with `headers`.
pub async fn serve(root: &Path, relative: &str, method: &Method, headers: &HeaderMap) -> Response {
    let Some(path) = resolve(root, relative) else { return not_found() };
    let Ok(metadata) = tokio::fs::metadata(&path).await else { return not_found() };
    if !metadata.is_file() {
        return not_found();
    }
    let size = metadata.len();
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    let etag = format!("\"{size:x}-{modified:x}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if matches {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| not_found());
    }
    let range = headers.get(header::RANGE).and_then(|value| value.to_str().ok());
    let (status, start, length) = match parse_range(range, size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((start, end))) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Err(Unsatisfiable) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .unwrap_or_else(|_| not_found());
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, HeaderValue::from(length));
    if method == Method::HEAD {
        return builder.body(Body::empty()).unwrap_or_else(|_| not_found());
    }
    let Ok(mut file) = tokio::fs::File::open(&path).await else { return not_found() };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    let stream = read_stream(file.take(length));
    builder.body(Body::from_stream(stream)).unwrap_or_else(|_| not_found())
}

/// A byte stream over an `AsyncRead`, in 256 KiB chunks.
fn read_stream<R>(reader: R) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    futures::stream::unfold(reader, |mut reader| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match reader.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(bytes::Bytes::from(buffer)), reader))
            }
            Err(error) => Some((Err(error), reader)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=x-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(Unsatisfiable));
    }

    proptest::proptest! {
        #[test]
        fn ranges_never_panic_and_stay_inside(text in ".{0,24}", size in 0u64..1000) {
            if let Ok(Some((start, end))) = parse_range(Some(&text), size) {
                proptest::prop_assert!(start <= end && end < size);
            }
        }
    }
}
