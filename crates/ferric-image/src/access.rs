//! Random access to an image file: the [`RandomAccess`] trait and its
//! implementations for a local file ([`FileAccess`]), an HTTP(S) URL read with
//! `Range` requests ([`HttpAccess`]) and a buffer in memory ([`MemoryAccess`]).
//!
//! qcow2 images are converted through this trait so that a remote image is
//! never staged whole: only the header, the tables and the data clusters are
//! fetched, in guest order.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::http::{self, HttpClient};
use crate::ImageError;

/// Reads of byte ranges from an image file of known length.
pub trait RandomAccess: Send + Sync {
    /// Exactly `len` bytes at `offset`; a range past [`RandomAccess::len`] is
    /// an error, never a short read.
    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Bytes, ImageError>> + Send;

    /// The file's length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks that `offset..offset+len` lies inside a file of `file_len` bytes.
pub(crate) fn check_range(offset: u64, len: usize, file_len: u64) -> Result<(), ImageError> {
    let end = u64::try_from(len).ok().and_then(|len| offset.checked_add(len));
    match end {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(ImageError::invalid(format!(
            "read of {len} bytes at offset {offset} is past the end of the image file ({file_len} bytes); is it truncated?"
        ))),
    }
}

/// An image held in memory (tests, fuzzing, small images).
#[derive(Debug, Clone)]
pub struct MemoryAccess {
    data: Bytes,
}

impl MemoryAccess {
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into() }
    }
}

impl RandomAccess for MemoryAccess {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ImageError> {
        check_range(offset, len, self.len())?;
        // Both fit in usize: checked against the buffer's length above.
        let start = usize::try_from(offset).map_err(|_| ImageError::invalid("offset overflow"))?;
        Ok(self.data.slice(start..start + len))
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// A local image file, read with positional reads on a blocking thread.
#[derive(Debug, Clone)]
pub struct FileAccess {
    file: Arc<std::fs::File>,
    path: PathBuf,
    len: u64,
}

impl FileAccess {
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let context = || format!("opening image file {}", path.display());
        let file = std::fs::File::open(path).map_err(|e| ImageError::io(context(), e))?;
        let len = file.metadata().map_err(|e| ImageError::io(context(), e))?.len();
        Ok(Self { file: Arc::new(file), path: path.to_owned(), len })
    }
}

impl RandomAccess for FileAccess {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ImageError> {
        use std::os::unix::fs::FileExt;

        check_range(offset, len, self.len)?;
        let file = Arc::clone(&self.file);
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; len];
            file.read_exact_at(&mut buffer, offset).map(|()| Bytes::from(buffer))
        })
        .await
        .map_err(|e| ImageError::io("image read task", std::io::Error::other(e)))?;
        read.map_err(|e| {
            ImageError::io(
                format!("reading {len} bytes at {offset} from {}", self.path.display()),
                e,
            )
        })
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// An image behind an HTTP(S) URL whose server answers `Range` requests
/// with `206 Partial Content`. Each read is one request, retried on errors.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    client: HttpClient,
    url: String,
    len: u64,
    retries: u32,
}

impl HttpAccess {
    /// Learns the file's length with a one-byte range request, failing
    /// clearly when the server does not serve ranges.
    pub async fn open(
        client: &reqwest::Client,
        url: &str,
        retries: u32,
    ) -> Result<Self, ImageError> {
        let client = HttpClient::new(client.clone(), url);
        let first = client.get_range(0, Some(0), retries).await?;
        let len = match first {
            http::RangeAnswer::Partial { total: Some(total), .. } => total,
            http::RangeAnswer::Partial { total: None, .. } => {
                return Err(ImageError::download(
                    url,
                    "the server does not say the file's length (Content-Range: bytes 0-0/*); cannot read a qcow2 image by ranges",
                ))
            }
            http::RangeAnswer::Full => {
                return Err(ImageError::download(
                    url,
                    "the server does not support Range requests (answered 200 to a range); \
                     qcow2 images over HTTP need ranges, unless a checksum is given (then the image is staged in the scratch directory)",
                ))
            }
            http::RangeAnswer::NotSatisfiable => 0,
        };
        Ok(Self { client, url: url.to_owned(), len, retries })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl RandomAccess for HttpAccess {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ImageError> {
        check_range(offset, len, self.len)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.client.read_range(offset, len, self.len, self.retries).await
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_reads_are_bounds_checked() {
        let access = MemoryAccess::new(vec![1u8, 2, 3, 4]);
        assert_eq!(access.read_at(1, 2).await.unwrap().as_ref(), &[2, 3]);
        assert_eq!(access.read_at(4, 0).await.unwrap().len(), 0);
        assert!(access.read_at(3, 2).await.is_err());
        assert!(access.read_at(u64::MAX, 2).await.is_err());
    }
}
