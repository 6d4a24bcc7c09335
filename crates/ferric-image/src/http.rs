//! HTTP plumbing: a client that never decodes `Content-Encoding` (checksums
//! are over the bytes as stored), a sequential download that resumes with
//! `Range: bytes=N-` after a dropped connection, and single range reads.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;

use crate::ImageError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A stalled connection counts as dropped after this long without data.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The client used when the caller gives none.
pub fn default_client() -> Result<reqwest::Client, ImageError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .build()
        .map_err(|e| ImageError::InvalidSource {
            url: String::new(),
            message: format!("cannot build an HTTP client: {}", error_chain(&e)),
        })
}

/// An error and its causes on one line (reqwest's own message is terse).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

async fn backoff(attempt: u32) {
    let delay = FIRST_BACKOFF.saturating_mul(1u32 << attempt.min(16)).min(MAX_BACKOFF);
    tokio::time::sleep(delay).await;
}

/// Whether a status is worth another try.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(headers: &HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = range.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        number => Some(number.parse().ok()?),
    };
    (start <= end).then_some((start, end, total))
}

/// What a server answered to a range request.
pub(crate) enum RangeAnswer {
    Partial {
        response: reqwest::Response,
        total: Option<u64>,
    },
    /// 200: the server ignored the range and sends the whole file.
    Full,
    /// 416: the range starts at or past the end of the file.
    NotSatisfiable,
}

/// A client bound to one URL.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    url: String,
}

impl HttpClient {
    pub(crate) fn new(client: reqwest::Client, url: &str) -> Self {
        Self { client, url: url.to_owned() }
    }

    fn fail(&self, message: impl Into<String>) -> ImageError {
        ImageError::download(&self.url, message)
    }

    /// Sends a GET (with an optional `Range` from `start` to `end`
    /// inclusive, open-ended when `end` is None), retrying connection
    /// errors and transient statuses; any other non-success is final.
    async fn get(
        &self,
        range: Option<(u64, Option<u64>)>,
        if_range: Option<&HeaderValue>,
        retries: u32,
    ) -> Result<reqwest::Response, ImageError> {
        let mut attempt = 0;
        loop {
            let mut request =
                self.client.get(&self.url).header(header::ACCEPT_ENCODING, "identity");
            if let Some((start, end)) = range {
                let value = match end {
                    Some(end) => format!("bytes={start}-{end}"),
                    None => format!("bytes={start}-"),
                };
                request = request.header(header::RANGE, value);
                if let Some(validator) = if_range {
                    request = request.header(header::IF_RANGE, validator.clone());
                }
            }
            let problem = match request.send().await {
                Ok(response)
                    if response.status().is_success()
                        || response.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
                {
                    return Ok(response)
                }
                Ok(response) if is_transient(response.status()) => {
                    format!("server answered {}", response.status())
                }
                Ok(response) => {
                    return Err(self.fail(format!("server answered {}", response.status())))
                }
                Err(error) => error_chain(&error),
            };
            if attempt >= retries {
                return Err(self.fail(format!("{problem} (gave up after {attempt} retries)")));
            }
            tracing::warn!(url = %self.url, attempt, "image request failed, retrying: {problem}");
            backoff(attempt).await;
            attempt += 1;
        }
    }

    /// Requests `start..=end` (or `start..` when `end` is None).
    pub(crate) async fn get_range(
        &self,
        start: u64,
        end: Option<u64>,
        retries: u32,
    ) -> Result<RangeAnswer, ImageError> {
        self.get_range_if(start, end, None, retries).await
    }

    async fn get_range_if(
        &self,
        start: u64,
        end: Option<u64>,
        if_range: Option<&HeaderValue>,
        retries: u32,
    ) -> Result<RangeAnswer, ImageError> {
        let response = self.get(Some((start, end)), if_range, retries).await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let Some((answered_start, _, total)) = parse_content_range(response.headers())
                else {
                    return Err(self.fail("206 answer without a valid Content-Range header"));
                };
                if answered_start != start {
                    return Err(self.fail(format!(
                        "asked for bytes from {start}, the server sent a range starting at {answered_start}"
                    )));
                }
                Ok(RangeAnswer::Partial { response, total })
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(RangeAnswer::NotSatisfiable),
            _ => Ok(RangeAnswer::Full),
        }
    }

    /// Exactly `len` bytes at `offset` of a file of `file_len` bytes.
    pub(crate) async fn read_range(
        &self,
        offset: u64,
        len: usize,
        file_len: u64,
        retries: u32,
    ) -> Result<Bytes, ImageError> {
        let last = offset + len as u64 - 1;
        let mut attempt = 0;
        loop {
            let problem =
                match self.get_range(offset, Some(last), retries).await? {
                    RangeAnswer::Partial { total: Some(total), .. } if total != file_len => {
                        return Err(self.fail(format!(
                        "the file changed while being read: its length was {file_len}, now {total}"
                    )))
                    }
                    RangeAnswer::Partial { response, .. } => match response.bytes().await {
                        Ok(body) if body.len() == len => return Ok(body),
                        Ok(body) => {
                            format!("range {offset}-{last}: got {} of {len} bytes", body.len())
                        }
                        Err(error) => format!("range {offset}-{last}: {}", error_chain(&error)),
                    },
                    RangeAnswer::Full => return Err(self.fail(
                        "the server answered 200 to a Range request: it does not support ranges",
                    )),
                    RangeAnswer::NotSatisfiable => {
                        return Err(self.fail(format!(
                        "the server refused range {offset}-{last} (416) of a {file_len}-byte file"
                    )))
                    }
                };
            if attempt >= retries {
                return Err(self.fail(format!("{problem} (gave up after {attempt} retries)")));
            }
            tracing::warn!(url = %self.url, attempt, "range read failed, retrying: {problem}");
            backoff(attempt).await;
            attempt += 1;
        }
    }
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A sequential download that survives dropped connections by asking for
/// the rest with `Range: bytes=<received>-`.
pub(crate) struct ResumableDownload {
    client: HttpClient,
    body: BodyStream,
    received: u64,
    content_length: Option<u64>,
    /// A strong ETag or Last-Modified, sent as `If-Range` on resumption so a
    /// changed file is not spliced onto the old one.
    validator: Option<HeaderValue>,
    retries: u32,
    reconnects: u32,
}

impl ResumableDownload {
    pub(crate) async fn start(
        client: reqwest::Client,
        url: &str,
        retries: u32,
    ) -> Result<Self, ImageError> {
        let client = HttpClient::new(client, url);
        let response = client.get(None, None, retries).await?;
        if response.status() != StatusCode::OK {
            return Err(client.fail(format!("unexpected answer {}", response.status())));
        }
        let headers = response.headers();
        let validator = headers
            .get(header::ETAG)
            .filter(|etag| !etag.as_bytes().starts_with(b"W/"))
            .or_else(|| headers.get(header::LAST_MODIFIED))
            .cloned();
        let content_length = response.content_length();
        Ok(Self {
            client,
            body: Box::pin(response.bytes_stream()),
            received: 0,
            content_length,
            validator,
            retries,
            reconnects: 0,
        })
    }

    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The next piece of the file, or None at its end.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, ImageError> {
        loop {
            let problem = match self.body.next().await {
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if let Some(expected) = self.content_length {
                        if self.received > expected {
                            return Err(self.client.fail(format!(
                                "the server sent more than its Content-Length of {expected} bytes"
                            )));
                        }
                    }
                    return Ok(Some(chunk));
                }
                Some(Err(error)) => error_chain(&error),
                None => match self.content_length {
                    Some(expected) if self.received < expected => {
                        format!("connection closed after {} of {expected} bytes", self.received)
                    }
                    _ => return Ok(None),
                },
            };
            if !self.resume(&problem).await? {
                return Ok(None);
            }
        }
    }

    /// Reconnects for the rest of the file; false when nothing is left.
    async fn resume(&mut self, problem: &str) -> Result<bool, ImageError> {
        if self.reconnects >= self.retries {
            return Err(self.client.fail(format!(
                "{problem}; gave up after {} reconnects at byte {}",
                self.reconnects, self.received
            )));
        }
        tracing::warn!(
            url = %self.client.url, received = self.received,
            "image download interrupted, resuming: {problem}"
        );
        backoff(self.reconnects).await;
        self.reconnects += 1;
        let answer = self
            .client
            .get_range_if(self.received, None, self.validator.as_ref(), self.retries)
            .await
            .map_err(|e| match e {
                ImageError::Download { url, message } => ImageError::Download {
                    url,
                    message: format!("{problem}; resuming failed: {message}"),
                },
                other => other,
            })?;
        match answer {
            RangeAnswer::Partial { response, total, .. } => {
                if let (Some(expected), Some(total)) = (self.content_length, total) {
                    if expected != total {
                        return Err(self.client.fail(format!(
                            "{problem}; on resumption the file's length changed from {expected} to {total} bytes"
                        )));
                    }
                }
                self.body = Box::pin(response.bytes_stream());
                Ok(true)
            }
            RangeAnswer::Full => Err(self.client.fail(format!(
                "{problem}; cannot resume: the server answered 200 to `Range: bytes={}-` \
                 (no range support, or the file changed)",
                self.received
            ))),
            // Asked from the very end of a file whose length was unknown.
            RangeAnswer::NotSatisfiable if self.content_length.is_none() => Ok(false),
            RangeAnswer::NotSatisfiable => Err(self.client.fail(format!(
                "{problem}; cannot resume: the server refused `Range: bytes={}-` (416)",
                self.received
            ))),
        }
    }

    pub(crate) fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::CONTENT_RANGE, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range(&headers("bytes 0-0/10")), Some((0, 0, Some(10))));
        assert_eq!(parse_content_range(&headers("bytes 5-9/*")), Some((5, 9, None)));
        assert_eq!(parse_content_range(&headers("bytes 9-5/10")), None);
        assert_eq!(parse_content_range(&headers("items 0-1/2")), None);
        assert_eq!(parse_content_range(&headers("bytes */10")), None);
    }
}
