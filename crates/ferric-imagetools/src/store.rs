//! A content-addressed image store on a local filesystem:
//!
//! ```text
//! <root>/sha256/<hex>        image contents, one file per distinct content
//! <root>/meta/<uuid>.json    one ImageRecord per imported image
//! <root>/tmp/                imports in progress
//! <root>/.lock               held (flock) while records are added or removed
//! ```
//!
//! Imports hash (SHA-256 and SHA-512) while copying into `tmp/`, then, under
//! the lock, rename the content into place (or drop it when that content is
//! already stored) and write the record through a temporary file and a
//! rename, so a crash never leaves a partial image or record visible. Names
//! are unique; deleting a record removes the content only when no other
//! record refers to it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ferric_image::format::{self, ImageFormat};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// (The cause is in the message, not chained, so `{:#}` shows it once.)
    #[error("{context}: {cause}")]
    Io { context: String, cause: std::io::Error },
    #[error("no image {0:?}")]
    NotFound(String),
    #[error("{key:?} matches several images: {ids}")]
    Ambiguous { key: String, ids: String },
    #[error("an image named {0:?} exists already")]
    NameTaken(String),
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    #[error("{0}")]
    UnsupportedFormat(String),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |cause| StoreError::Io { context, cause }
}

/// One imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Uuid,
    pub name: Option<String>,
    /// Lowercase hex.
    pub sha256: String,
    pub sha512: String,
    /// Bytes stored.
    pub size: u64,
    pub format: ImageFormat,
    /// The disk size the image expands to: the qcow2 header's, a raw
    /// image's own size, unknown for compressed streams.
    pub virtual_size: Option<u64>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `file://<absolute path>` or the URL (without credentials or query).
    pub source: String,
}

/// The store at one root directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// Checksums, size and the first bytes, computed while copying.
struct Digests {
    sha256: Sha256,
    sha512: Sha512,
    size: u64,
    head: Vec<u8>,
}

impl Digests {
    fn new() -> Digests {
        Digests { sha256: Sha256::new(), sha512: Sha512::new(), size: 0, head: Vec::new() }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.sha512.update(chunk);
        self.size += chunk.len() as u64;
        if self.head.len() < format::DETECT_LEN {
            let take = (format::DETECT_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
    }
}

/// Temporary imports older than this are leftovers of crashed processes.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, StoreError> {
        let store = ImageStore { root: root.into() };
        for dir in [store.root.clone(), store.blobs_dir(), store.meta_dir(), store.temp_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(io_error(format!("creating {}", dir.display())))?;
        }
        store.remove_stale_temporaries();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn meta_path(&self, id: Uuid) -> PathBuf {
        self.meta_dir().join(format!("{id}.json"))
    }

    /// Where a record's content is.
    pub fn path(&self, record: &ImageRecord) -> PathBuf {
        self.blobs_dir().join(&record.sha256)
    }

    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(self.temp_dir()) else { return };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Holds the store's lock until dropped.
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        let path = self.root.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(format!("opening {}", path.display())))?;
        file.lock().map_err(io_error(format!("locking {}", path.display())))?;
        Ok(file)
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(self.temp_dir())
            .map_err(io_error(format!("creating a file in {}", self.temp_dir().display())))
    }

    /// Imports a local file.
    pub fn create_from_file(
        &self,
        path: &Path,
        name: Option<String>,
    ) -> Result<ImageRecord, StoreError> {
        if let Some(name) = &name {
            validate_name(name)?;
            self.ensure_name_free(name)?;
        }
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut source =
            std::fs::File::open(path).map_err(io_error(format!("opening {}", path.display())))?;
        if !source.metadata().map_err(io_error(format!("reading {}", path.display())))?.is_file() {
            return Err(StoreError::Io {
                context: format!("importing {}", path.display()),
                cause: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        let mut temp = self.temp_file()?;
        let mut digests = Digests::new();
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let read = match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(io_error(format!("reading {}", path.display()))(error)),
            };
            digests.update(&buffer[..read]);
            temp.write_all(&buffer[..read]).map_err(io_error("writing the import"))?;
        }
        self.commit(temp, digests, name, format!("file://{}", absolute.display()))
    }

    /// Downloads and imports an image over HTTP(S), streaming to disk.
    /// The final step (lock, rename, fsync) blocks briefly; a server should
    /// run this on a runtime that tolerates that (or in `spawn_blocking`).
    pub async fn create_from_url(
        &self,
        url: &str,
        name: Option<String>,
    ) -> Result<ImageRecord, StoreError> {
        let download = |message: String| StoreError::Download { url: redact_url(url), message };
        if let Some(name) = &name {
            validate_name(name)?;
            self.ensure_name_free(name)?;
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|error| download(ferric_image::error_chain(&error)))?;
        let response =
            client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| download(ferric_image::error_chain(&error.without_url())))?;
        let expected = response.content_length();
        let temp = self.temp_file()?;
        let file = temp.reopen().map_err(io_error("opening the import"))?;
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        let mut digests = Digests::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| download(ferric_image::error_chain(&error.without_url())))?;
            digests.update(&chunk);
            file.write_all(&chunk).await.map_err(io_error("writing the import"))?;
        }
        file.flush().await.map_err(io_error("writing the import"))?;
        drop(file);
        if let Some(expected) = expected {
            if expected != digests.size {
                return Err(download(format!(
                    "received {} bytes, the server announced {expected}",
                    digests.size
                )));
            }
        }
        self.commit(temp, digests, name, redact_url(url))
    }

    fn ensure_name_free(&self, name: &str) -> Result<(), StoreError> {
        if self.list()?.iter().any(|record| record.name.as_deref() == Some(name)) {
            return Err(StoreError::NameTaken(name.to_owned()));
        }
        Ok(())
    }

    fn commit(
        &self,
        temp: tempfile::NamedTempFile,
        digests: Digests,
        name: Option<String>,
        source: String,
    ) -> Result<ImageRecord, StoreError> {
        let format = format::detect_supported(&digests.head)
            .map_err(|error| StoreError::UnsupportedFormat(error.to_string()))?;
        let virtual_size = match format {
            ImageFormat::Qcow2 => digests
                .head
                .get(24..32)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_be_bytes),
            ImageFormat::Raw => Some(digests.size),
            ImageFormat::Gzip | ImageFormat::Xz | ImageFormat::Zstd => None,
        };
        let record = ImageRecord {
            id: Uuid::new_v4(),
            name,
            sha256: hex(&digests.sha256.finalize()),
            sha512: hex(&digests.sha512.finalize()),
            size: digests.size,
            format,
            virtual_size,
            created_at: now_rfc3339(),
            source,
        };
        temp.as_file().sync_all().map_err(io_error("syncing the import"))?;

        let _lock = self.lock()?;
        if let Some(name) = &record.name {
            self.ensure_name_free(name)?;
        }
        let blob = self.path(&record);
        let present = std::fs::metadata(&blob).is_ok_and(|meta| meta.len() == record.size);
        if present {
            tracing::debug!(sha256 = %record.sha256, "content already stored");
        } else {
            let mut permissions =
                temp.as_file().metadata().map_err(io_error("reading the import"))?.permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o444);
            temp.as_file().set_permissions(permissions).map_err(io_error("chmod the import"))?;
            temp.persist(&blob)
                .map_err(|error| io_error(format!("storing {}", blob.display()))(error.error))?;
            sync_dir(&self.blobs_dir())?;
        }
        self.write_record(&record)?;
        Ok(record)
    }

    fn write_record(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let path = self.meta_path(record.id);
        let mut temp = tempfile::Builder::new()
            .prefix("meta-")
            .tempfile_in(self.temp_dir())
            .map_err(io_error("creating a record"))?;
        let json = serde_json::to_vec_pretty(record).map_err(|error| StoreError::Io {
            context: "encoding a record".into(),
            cause: std::io::Error::other(error),
        })?;
        temp.write_all(&json).map_err(io_error("writing a record"))?;
        temp.as_file().sync_all().map_err(io_error("syncing a record"))?;
        temp.persist(&path)
            .map_err(|error| io_error(format!("writing {}", path.display()))(error.error))?;
        sync_dir(&self.meta_dir())
    }

    fn read_record(&self, path: &Path) -> Result<ImageRecord, StoreError> {
        let bytes = std::fs::read(path).map_err(io_error(format!("reading {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|error| StoreError::Io {
            context: format!("parsing {}", path.display()),
            cause: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })
    }

    /// Every record, oldest first. Unreadable records are skipped (logged).
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.meta_dir();
        let mut records = Vec::new();
        for entry in
            std::fs::read_dir(&dir).map_err(io_error(format!("listing {}", dir.display())))?
        {
            let entry = entry.map_err(io_error(format!("listing {}", dir.display())))?;
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            match self.read_record(&path) {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(%error, "skipping an unreadable image record"),
            }
        }
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// Finds a record by id, name, or a prefix (at least 6 hex digits,
    /// optionally `sha256:`-prefixed) of its SHA-256.
    pub fn get(&self, key: &str) -> Result<ImageRecord, StoreError> {
        if let Some(record) = self.get_by_id_or_name(key)? {
            return Ok(record);
        }
        let prefix = key.strip_prefix("sha256:").unwrap_or(key).to_ascii_lowercase();
        if prefix.len() >= 6 && prefix.len() <= 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let matches: Vec<ImageRecord> = self
                .list()?
                .into_iter()
                .filter(|record| record.sha256.starts_with(&prefix))
                .collect();
            return match matches.len() {
                0 => Err(StoreError::NotFound(key.to_owned())),
                1 => Ok(matches
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::NotFound(key.into()))?),
                _ => Err(StoreError::Ambiguous {
                    key: key.to_owned(),
                    ids: matches.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(", "),
                }),
            };
        }
        Err(StoreError::NotFound(key.to_owned()))
    }

    fn get_by_id_or_name(&self, key: &str) -> Result<Option<ImageRecord>, StoreError> {
        if let Ok(id) = Uuid::parse_str(key) {
            let path = self.meta_path(id);
            if path.exists() {
                return self.read_record(&path).map(Some);
            }
        }
        Ok(self.list()?.into_iter().find(|record| record.name.as_deref() == Some(key)))
    }

    /// Deletes the record with this id or name; its content goes too unless
    /// another record has the same content. Returns the deleted record.
    pub fn delete(&self, key: &str) -> Result<ImageRecord, StoreError> {
        let _lock = self.lock()?;
        let record =
            self.get_by_id_or_name(key)?.ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        let meta = self.meta_path(record.id);
        std::fs::remove_file(&meta).map_err(io_error(format!("removing {}", meta.display())))?;
        sync_dir(&self.meta_dir())?;
        let shared = self.list()?.iter().any(|other| other.sha256 == record.sha256);
        if !shared {
            let blob = self.path(&record);
            match std::fs::remove_file(&blob) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(format!("removing {}", blob.display()))(error)),
            }
        }
        Ok(record)
    }
}

/// Names are free text but must not pass for something else: not empty,
/// at most 255 bytes, no control characters, not a UUID.
fn validate_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.trim().is_empty() {
        Some("empty")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else if Uuid::parse_str(name).is_ok() {
        Some("looks like an image id")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

/// The URL without credentials or query (which may carry tokens).
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                parsed.set_query(Some("redacted"));
            }
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io_error(format!("syncing {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(validate_name("ubuntu-24.04").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("0b9a3c1e-8a43-4a0c-9d32-2d8a2b0f4b11").is_err());
        assert_eq!(
            redact_url("https://user:pw@example.com/a.img?token=x"),
            "https://example.com/a.img?redacted"
        );
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }
}
