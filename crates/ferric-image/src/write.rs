//! Writing an image to a disk (a block device or a file) while it arrives.
//!
//! * **raw, gzip, xz, zstd** are streamed: HTTP body (or file) → decoder →
//!   large aligned writes, each handed to writeback at once and dropped
//!   from the page cache a little later (so the final sync is short and the
//!   image does not fill RAM). The checksum is computed over the bytes *as
//!   downloaded* (the image file's checksum, as Glance and Ironic record
//!   it), on a thread of its own so that download, hashing and writing
//!   overlap, and verified after the target is synced; on a mismatch the target's
//!   partition tables are wiped. A dropped connection is resumed with
//!   `Range: bytes=<received>-` into the same decoder and hasher.
//! * **qcow2** cannot be converted in file order, so it is read by ranges
//!   ([`crate::access::RandomAccess`]): header, L1, then each L2 table and
//!   its data clusters in guest order, adjacent host ranges coalesced into
//!   reads of up to 8 MiB. A qcow2 checksum, though, is over the file in
//!   file order. The trade-off taken: **with a checksum**, a remote qcow2
//!   is first downloaded sequentially into a temporary file in
//!   [`WriteOptions::scratch`] while being hashed, verified, and only then
//!   converted (so the scratch directory needs room for the qcow2 file; a
//!   local qcow2 file is hashed in a first pass). **Without a checksum**
//!   it is converted straight over HTTP `Range` requests, staging nothing,
//!   and the report carries no checksum.
//!
//! Zero and unallocated clusters, and all-zero chunks of streamed images,
//! are skipped only when the caller says the target is pre-zeroed
//! ([`WriteOptions::target_zeroed`]); a real disk is not, so by default
//! zeroes are written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::access::{FileAccess, HttpAccess, RandomAccess};
use crate::checksum::{Checksum, ChecksumAlgorithm, Hasher};
use crate::format::{self, ImageFormat, DETECT_LEN};
use crate::http::{self, ResumableDownload};
use crate::qcow2::{ClusterDecompressor, Extent, ExtentKind, Qcow2Image};
use crate::target::{ReadOrImageError, TargetWriter};
use crate::ImageError;

pub use crate::target::{device_size, wipe_partition_tables};

/// The largest single range read of a qcow2 conversion.
pub const MAX_FETCH: u64 = 8 << 20;
/// Host ranges this close are fetched in one read (the gap is read and dropped).
const FETCH_GAP: u64 = 256 << 10;
/// Reads of a local file in streamed writes.
const FILE_READ_CHUNK: usize = 1 << 20;
/// Batches of downloaded chunks buffered between the download and the decoder.
const PIPE_DEPTH: usize = 8;
/// Bytes of downloaded chunks handed to the decoder at once.
const PIPE_BATCH: usize = 1 << 20;
/// Concurrent range reads of a qcow2 conversion.
const FETCHES_IN_FLIGHT: usize = 2;

/// Where an image comes from and what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// `http://`, `https://`, `file://` or a plain path.
    pub url: String,
    /// Verified over the file as downloaded; None: sha256 is computed and reported.
    pub checksum: Option<Checksum>,
    /// None: detected from the first bytes.
    pub format: Option<ImageFormat>,
}

impl ImageSource {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), checksum: None, format: None }
    }
}

/// Shared progress counters, readable while a write runs.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    written: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Progress {
    /// Bytes of the disk image done so far (zero runs skipped on a zeroed target count as done).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The decompressed or virtual size when known, else the download's
    /// Content-Length; None when neither is known (yet).
    pub fn total(&self) -> Option<u64> {
        match self.total.load(Ordering::Relaxed) {
            0 => None,
            total => Some(total),
        }
    }

    pub(crate) fn add_written(&self, bytes: u64) {
        self.written.fetch_add(bytes, Ordering::Relaxed);
    }

    fn set_total(&self, total: Option<u64>) {
        self.total.store(total.unwrap_or(0), Ordering::Relaxed);
    }
}

/// How to write.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Reconnects after a dropped HTTP stream (and retries of failed requests).
    pub retries: u32,
    /// Size of the writes to the target; rounded up to a multiple of 4 KiB, at least 64 KiB.
    pub chunk: usize,
    /// The target reads as zeroes already (a fresh sparse file, a trimmed
    /// disk): zero runs are skipped instead of written.
    pub target_zeroed: bool,
    /// Where a remote qcow2 with a checksum is staged; None: the system's temporary directory.
    pub scratch: Option<PathBuf>,
    /// The HTTP client (TLS roots, proxies, timeouts); None: a default one.
    /// It must not decode `Content-Encoding`.
    pub client: Option<reqwest::Client>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { retries: 5, chunk: 4 << 20, target_zeroed: false, scratch: None, client: None }
    }
}

/// What a successful write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    pub format: ImageFormat,
    /// Bytes read from the source (a qcow2 read by ranges: only what was fetched).
    pub bytes_downloaded: u64,
    /// Bytes written to the target (zeroes skipped on a zeroed target not counted).
    pub bytes_written: u64,
    /// The verified checksum, or the sha256 computed on the way when none was
    /// given; None for a qcow2 converted by ranges without a checksum.
    pub checksum: Option<Checksum>,
}

enum Location {
    Http(String),
    File(PathBuf),
}

fn locate(url: &str) -> Result<Location, ImageError> {
    let invalid = |message: String| ImageError::InvalidSource { url: url.to_owned(), message };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Location::Http(url.to_owned()));
    }
    if lower.starts_with("file://") {
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let path =
            parsed.to_file_path().map_err(|()| invalid("not a local absolute file URL".into()))?;
        return Ok(Location::File(path));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(invalid(format!("unsupported scheme {scheme:?}; use http, https or file")));
    }
    if url.is_empty() {
        return Err(invalid("empty image location".into()));
    }
    Ok(Location::File(PathBuf::from(url)))
}

/// Writes the image at `source` to `target` (a block device or an existing
/// file, never extended), from offset 0. See the module docs for how each
/// format is handled.
pub async fn write_image(
    source: &ImageSource,
    target: &Path,
    options: &WriteOptions,
    progress: &Progress,
) -> Result<WriteReport, ImageError> {
    let location = locate(&source.url)?;
    let target_size = device_size(target)?;
    let chunk = options.chunk.max(64 << 10).next_multiple_of(4096);
    let job = Job { source, target, target_size, chunk, options, progress };
    let client = match &options.client {
        Some(client) => client.clone(),
        None => http::default_client()?,
    };

    // Formats known up front that need no sequential stream.
    match (&location, source.format, &source.checksum) {
        (Location::Http(url), Some(ImageFormat::Qcow2), None) => {
            let access = HttpAccess::open(&client, url, options.retries).await?;
            return job.convert_qcow2(access, 0, None).await;
        }
        (Location::File(path), Some(ImageFormat::Qcow2), _) => {
            return job.qcow2_from_file(path).await;
        }
        _ => {}
    }

    let mut stream = match &location {
        Location::Http(url) => SequentialSource::Http(
            ResumableDownload::start(client.clone(), url, options.retries).await?,
        ),
        Location::File(path) => SequentialSource::open_file(path).await?,
    };
    let mut head = Vec::new();
    let mut peeked = Vec::new();
    while head.len() < DETECT_LEN {
        match stream.next_chunk().await? {
            Some(chunk) => {
                head.extend_from_slice(&chunk[..chunk.len().min(DETECT_LEN - head.len())]);
                peeked.push(chunk);
            }
            None => break,
        }
    }
    let format = match source.format {
        Some(format) => {
            let detected = format::detect(&head);
            if detected != format {
                tracing::warn!(url = %source.url, %format, %detected, "image format given differs from the detected one; using the given one");
            }
            format
        }
        None => format::detect_supported(&head)?,
    };
    tracing::info!(url = %source.url, %format, target = %target.display(), "writing image");

    match (format, location) {
        (ImageFormat::Qcow2, Location::File(path)) => job.qcow2_from_file(&path).await,
        (ImageFormat::Qcow2, Location::Http(url)) => match &source.checksum {
            Some(expected) => job.qcow2_staged(stream, peeked, expected).await,
            None => {
                drop(stream);
                let access = HttpAccess::open(&client, &url, options.retries).await?;
                job.convert_qcow2(access, 0, None).await
            }
        },
        (format, _) => job.stream(stream, peeked, format).await,
    }
}

/// A file read in order: an HTTP download or a local file.
enum SequentialSource {
    Http(ResumableDownload),
    File { file: tokio::fs::File, path: PathBuf, len: u64, received: u64 },
}

impl SequentialSource {
    async fn open_file(path: &Path) -> Result<Self, ImageError> {
        let context = || format!("opening image file {}", path.display());
        let file = tokio::fs::File::open(path).await.map_err(|e| ImageError::io(context(), e))?;
        let len = file.metadata().await.map_err(|e| ImageError::io(context(), e))?.len();
        Ok(Self::File { file, path: path.to_owned(), len, received: 0 })
    }

    fn len_hint(&self) -> Option<u64> {
        match self {
            Self::Http(download) => download.content_length(),
            Self::File { len, .. } => Some(*len),
        }
    }

    fn received(&self) -> u64 {
        match self {
            Self::Http(download) => download.received(),
            Self::File { received, .. } => *received,
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ImageError> {
        match self {
            Self::Http(download) => download.next_chunk().await,
            Self::File { file, path, received, .. } => {
                let mut buffer = Vec::with_capacity(FILE_READ_CHUNK);
                let read = (&mut *file)
                    .take(FILE_READ_CHUNK as u64)
                    .read_to_end(&mut buffer)
                    .await
                    .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
                *received += read as u64;
                Ok((read > 0).then(|| Bytes::from(buffer)))
            }
        }
    }
}

/// One write's parameters.
struct Job<'a> {
    source: &'a ImageSource,
    target: &'a Path,
    target_size: u64,
    chunk: usize,
    options: &'a WriteOptions,
    progress: &'a Progress,
}

impl Job<'_> {
    fn hasher(&self) -> Hasher {
        Hasher::new(
            self.source.checksum.as_ref().map_or(ChecksumAlgorithm::Sha256, |c| c.algorithm),
        )
    }

    fn verify(&self, actual: Checksum) -> Result<Checksum, ImageError> {
        match &self.source.checksum {
            Some(expected) if *expected != actual => Err(ImageError::ChecksumMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            }),
            _ => Ok(actual),
        }
    }

    fn too_large(&self, needed: u64) -> ImageError {
        ImageError::TooLarge { target: self.target.to_owned(), needed, available: self.target_size }
    }

    fn open_writer(&self) -> Result<TargetWriter, ImageError> {
        TargetWriter::open(
            self.target,
            self.target_size,
            self.chunk,
            self.options.target_zeroed,
            self.progress.clone(),
        )
    }

    /// Raw and compressed streams: download → decoder → target.
    async fn stream(
        &self,
        mut stream: SequentialSource,
        peeked: Vec<Bytes>,
        format: ImageFormat,
    ) -> Result<WriteReport, ImageError> {
        let length = stream.len_hint();
        if format == ImageFormat::Raw {
            if let Some(length) = length.filter(|&length| length > self.target_size) {
                return Err(self.too_large(length));
            }
        }
        self.progress.set_total(length);

        let mut writer = self.open_writer()?;
        if format.is_compressed_stream() {
            writer.check_inner_format(format);
        }
        let (sender, receiver) = mpsc::channel::<Result<Vec<Bytes>, ()>>(PIPE_DEPTH);
        let write_task = tokio::task::spawn_blocking(move || {
            let mut decoder = crate::decompress::decoder(format, ChunkReader::new(receiver));
            loop {
                match writer.fill_from(&mut decoder) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(ReadOrImageError::Image(error)) => return Err(error),
                    Err(ReadOrImageError::Read(error)) => {
                        return Err(ImageError::Decompress { format, message: error.to_string() })
                    }
                }
            }
            writer.finish()
        });

        // Hashing runs on its own thread, so that download, hash and write
        // (and decompression) overlap instead of taking turns.
        let mut hasher = HashPipe::start(self.hasher());
        let mut download_error = None;
        let mut pending = peeked.into_iter();
        // Network chunks are small (often 16 KiB): hand them over in batches.
        let mut batch = Vec::new();
        let mut batch_len = 0;
        loop {
            let next = match pending.next() {
                Some(chunk) => Ok(Some(chunk)),
                None => stream.next_chunk().await,
            };
            let end = match next {
                Ok(Some(chunk)) => {
                    batch_len += chunk.len();
                    batch.push(chunk);
                    false
                }
                Ok(None) => true,
                Err(error) => {
                    let _ = sender.send(Err(())).await;
                    download_error = Some(error);
                    break;
                }
            };
            if (end || batch_len >= PIPE_BATCH) && !batch.is_empty() {
                batch_len = 0;
                hasher.feed(batch.clone()).await;
                if sender.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                    break; // The writer stopped; its result says why.
                }
            }
            if end {
                break;
            }
        }
        drop(sender);
        let written = write_task
            .await
            .map_err(|e| ImageError::io("image write task", std::io::Error::other(e)));
        if let Some(error) = download_error {
            return Err(error);
        }
        let (bytes_written, image_len) = written??;
        // A decoder that ended before its input did: hash the rest anyway.
        while let Some(chunk) = stream.next_chunk().await? {
            hasher.feed(vec![chunk]).await;
        }
        let hasher = hasher.finish().await?;
        self.progress.set_total(Some(image_len));
        let checksum = match self.verify(hasher.finish()) {
            Ok(checksum) => checksum,
            Err(mismatch) => {
                tracing::error!(url = %self.source.url, "{mismatch}; wiping the target's partition tables");
                if let Err(error) = wipe_partition_tables(self.target) {
                    tracing::error!(target = %self.target.display(), "wiping failed: {error}");
                }
                return Err(mismatch);
            }
        };
        Ok(WriteReport {
            format,
            bytes_downloaded: stream.received(),
            bytes_written,
            checksum: Some(checksum),
        })
    }

    /// A remote qcow2 with a checksum: download into the scratch directory
    /// while hashing, verify, then convert from there.
    async fn qcow2_staged(
        &self,
        mut stream: SequentialSource,
        peeked: Vec<Bytes>,
        expected: &Checksum,
    ) -> Result<WriteReport, ImageError> {
        let scratch = self.options.scratch.clone().unwrap_or_else(std::env::temp_dir);
        let staged = tempfile::Builder::new()
            .prefix("ferric-image-")
            .suffix(".qcow2")
            .tempfile_in(&scratch)
            .map_err(|e| {
                ImageError::io(format!("creating a scratch file in {}", scratch.display()), e)
            })?;
        let context = || format!("staging the qcow2 image in {}", staged.path().display());
        let std_file = staged.reopen().map_err(|e| ImageError::io(context(), e))?;
        let mut file =
            tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(std_file));
        let mut hasher = HashPipe::start(Hasher::new(expected.algorithm));
        let mut pending = peeked.into_iter();
        loop {
            let chunk = match pending.next() {
                Some(chunk) => chunk,
                None => match stream.next_chunk().await? {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            hasher.feed(vec![chunk.clone()]).await;
            file.write_all(&chunk).await.map_err(|e| ImageError::io(context(), e))?;
        }
        file.flush().await.map_err(|e| ImageError::io(context(), e))?;
        drop(file);
        let checksum = self.verify(hasher.finish().await?.finish())?;
        let access = FileAccess::open(staged.path())?;
        let mut report = self.convert_qcow2(access, 0, Some(checksum)).await?;
        // What came over the network is the whole file, not the conversion's reads.
        report.bytes_downloaded = stream.received();
        Ok(report)
    }

    /// A local qcow2 file: hash it first when a checksum is given, then convert.
    async fn qcow2_from_file(&self, path: &Path) -> Result<WriteReport, ImageError> {
        let access = FileAccess::open(path)?;
        let Some(expected) = &self.source.checksum else {
            return self.convert_qcow2(access, 0, None).await;
        };
        let mut stream = SequentialSource::open_file(path).await?;
        let mut hasher = HashPipe::start(Hasher::new(expected.algorithm));
        while let Some(chunk) = stream.next_chunk().await? {
            hasher.feed(vec![chunk]).await;
        }
        let checksum = self.verify(hasher.finish().await?.finish())?;
        self.convert_qcow2(access, stream.received(), Some(checksum)).await
    }

    /// Converts a qcow2 image read by ranges, in guest order.
    async fn convert_qcow2<A: RandomAccess + 'static>(
        &self,
        access: A,
        already_downloaded: u64,
        checksum: Option<Checksum>,
    ) -> Result<WriteReport, ImageError> {
        let access = CountingAccess { inner: access, count: AtomicU64::new(0) };
        let image = Qcow2Image::open(access).await?;
        let virtual_size = image.virtual_size();
        if virtual_size > self.target_size {
            return Err(self.too_large(virtual_size));
        }
        self.progress.set_total(Some(virtual_size));
        let header = image.header().clone();
        let l1 = image.read_l1().await?;

        let mut writer = self.open_writer()?;
        let (sender, mut receiver) = mpsc::channel::<Vec<ClusterOp>>(FETCHES_IN_FLIGHT * 2);
        let write_task = tokio::task::spawn_blocking(move || {
            let mut decompressor = ClusterDecompressor::new(header.compression);
            let mut cluster = vec![0u8; header.cluster_size() as usize];
            while let Some(ops) = receiver.blocking_recv() {
                for op in ops {
                    match op {
                        ClusterOp::Data(data) => writer.write(&data)?,
                        ClusterOp::Zeroes(len) => writer.write_zeroes(len)?,
                        ClusterOp::Compressed { data, len } => {
                            decompressor.decompress(&data, &mut cluster)?;
                            writer.write(&cluster[..len as usize])?;
                        }
                    }
                }
            }
            writer.finish()
        });

        let mut fetch_error = None;
        'tables: for (index, l2_offset) in l1.into_iter().enumerate() {
            let batches = match image.table_extents(index as u64, l2_offset).await {
                Ok(extents) => plan_fetches(&extents, MAX_FETCH, FETCH_GAP),
                Err(error) => {
                    fetch_error = Some(error);
                    break;
                }
            };
            let mut fetched = futures::stream::iter(batches)
                .map(|batch| fetch(image.access(), batch))
                .buffered(FETCHES_IN_FLIGHT);
            while let Some(ops) = fetched.next().await {
                match ops {
                    Ok(ops) => {
                        if sender.send(ops).await.is_err() {
                            break 'tables; // The writer failed; its result says why.
                        }
                    }
                    Err(error) => {
                        fetch_error = Some(error);
                        break 'tables;
                    }
                }
            }
        }
        drop(sender);
        let written = write_task
            .await
            .map_err(|e| ImageError::io("image write task", std::io::Error::other(e)))?;
        if let Some(error) = fetch_error {
            return Err(error);
        }
        let (bytes_written, image_len) = written?;
        if image_len != virtual_size {
            return Err(ImageError::invalid(format!(
                "qcow2 conversion produced {image_len} bytes, the virtual size is {virtual_size}"
            )));
        }
        Ok(WriteReport {
            format: ImageFormat::Qcow2,
            bytes_downloaded: already_downloaded + image.access().count.load(Ordering::Relaxed),
            bytes_written,
            checksum,
        })
    }
}

/// One step of a qcow2 conversion, in guest order.
enum ClusterOp {
    Data(Bytes),
    Zeroes(u64),
    /// A compressed cluster, of which the first `len` bytes are written.
    Compressed {
        data: Bytes,
        len: u64,
    },
}

/// Extents served by one range read (none when all are zeroes).
#[derive(Debug, PartialEq, Eq)]
struct FetchBatch {
    host_range: Option<(u64, u64)>,
    extents: Vec<Extent>,
}

/// Groups guest-ordered extents into reads: a read grows while the next
/// extent's host range starts inside it or at most `gap` after it, and
/// stays within `max_fetch` bytes. Data extents are split to fit.
fn plan_fetches(extents: &[Extent], max_fetch: u64, gap: u64) -> Vec<FetchBatch> {
    let mut batches = Vec::new();
    let mut current = FetchBatch { host_range: None, extents: Vec::new() };
    let pieces = extents.iter().flat_map(|extent| {
        let pieces = match extent.kind {
            ExtentKind::Data { .. } => extent.len.div_ceil(max_fetch).max(1),
            _ => 1,
        };
        (0..pieces).map(move |piece| match extent.kind {
            ExtentKind::Data { host_offset } => {
                let skip = piece * max_fetch;
                Extent {
                    guest_offset: extent.guest_offset + skip,
                    len: (extent.len - skip).min(max_fetch),
                    kind: ExtentKind::Data { host_offset: host_offset + skip },
                }
            }
            _ => *extent,
        })
    });
    for extent in pieces {
        if let Some((start, end)) = extent.host_range() {
            match current.host_range {
                Some((batch_start, batch_end))
                    if start >= batch_start
                        && start <= batch_end.saturating_add(gap)
                        && end.max(batch_end) - batch_start <= max_fetch =>
                {
                    current.host_range = Some((batch_start, end.max(batch_end)));
                }
                Some(_) => {
                    let full = std::mem::replace(
                        &mut current,
                        FetchBatch { host_range: Some((start, end)), extents: Vec::new() },
                    );
                    batches.push(full);
                }
                None => current.host_range = Some((start, end)),
            }
        }
        current.extents.push(extent);
    }
    if !current.extents.is_empty() {
        batches.push(current);
    }
    batches
}

async fn fetch<A: RandomAccess>(
    access: &A,
    batch: FetchBatch,
) -> Result<Vec<ClusterOp>, ImageError> {
    let (start, data) = match batch.host_range {
        Some((start, end)) => (start, access.read_at(start, (end - start) as usize).await?),
        None => (0, Bytes::new()),
    };
    let slice = |offset: u64, len: u64| {
        let from = (offset - start) as usize;
        data.slice(from..from + len as usize)
    };
    Ok(batch
        .extents
        .iter()
        .map(|extent| match extent.kind {
            ExtentKind::Zero => ClusterOp::Zeroes(extent.len),
            ExtentKind::Data { host_offset } => ClusterOp::Data(slice(host_offset, extent.len)),
            ExtentKind::Compressed { host_offset, compressed_len } => {
                ClusterOp::Compressed { data: slice(host_offset, compressed_len), len: extent.len }
            }
        })
        .collect())
}

/// Counts the bytes read through it.
struct CountingAccess<A> {
    inner: A,
    count: AtomicU64,
}

impl<A: RandomAccess> RandomAccess for CountingAccess<A> {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ImageError> {
        let data = self.inner.read_at(offset, len).await?;
        self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// A [`Hasher`] on a blocking thread, fed batches of chunks through a
/// bounded channel (the chunks are shared, not copied).
struct HashPipe {
    sender: mpsc::Sender<Vec<Bytes>>,
    task: tokio::task::JoinHandle<Hasher>,
}

impl HashPipe {
    fn start(mut hasher: Hasher) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Vec<Bytes>>(PIPE_DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(batch) = receiver.blocking_recv() {
                for chunk in batch {
                    hasher.update(&chunk);
                }
            }
            hasher
        });
        Self { sender, task }
    }

    /// Queues a batch; waits while the hasher is [`PIPE_DEPTH`] batches behind.
    async fn feed(&mut self, batch: Vec<Bytes>) {
        // A closed channel means the thread panicked; `finish` reports it.
        let _ = self.sender.send(batch).await;
    }

    /// The hasher, once it has seen every batch.
    async fn finish(self) -> Result<Hasher, ImageError> {
        drop(self.sender);
        self.task.await.map_err(|e| ImageError::io("image hash task", std::io::Error::other(e)))
    }
}

/// The download side of the pipe as a blocking `BufRead` for decoders.
/// An `Err(())` message means the download failed (reported separately).
struct ChunkReader {
    receiver: mpsc::Receiver<Result<Vec<Bytes>, ()>>,
    queued: std::collections::VecDeque<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    fn new(receiver: mpsc::Receiver<Result<Vec<Bytes>, ()>>) -> Self {
        Self { receiver, queued: std::collections::VecDeque::new(), current: Bytes::new() }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = std::io::BufRead::fill_buf(self)?;
        let len = available.len().min(buf.len());
        buf[..len].copy_from_slice(&available[..len]);
        self.current.advance(len);
        Ok(len)
    }
}

impl std::io::BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() {
            if let Some(chunk) = self.queued.pop_front() {
                self.current = chunk;
                continue;
            }
            match self.receiver.blocking_recv() {
                Some(Ok(batch)) => self.queued.extend(batch),
                Some(Err(())) => return Err(std::io::Error::other("the download failed")),
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount.min(self.current.len()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn data(guest_offset: u64, len: u64, host_offset: u64) -> Extent {
        Extent { guest_offset, len, kind: ExtentKind::Data { host_offset } }
    }

    #[test]
    fn plans_coalesced_fetches() {
        let zero = Extent { guest_offset: 100, len: 50, kind: ExtentKind::Zero };
        let compressed = Extent {
            guest_offset: 150,
            len: 50,
            kind: ExtentKind::Compressed { host_offset: 1010, compressed_len: 30 },
        };
        let extents = [data(0, 100, 1000), zero, compressed, data(200, 10, 5000)];
        let batches = plan_fetches(&extents, 1000, 100);
        assert_eq!(
            batches,
            vec![
                FetchBatch {
                    host_range: Some((1000, 1100)),
                    extents: vec![data(0, 100, 1000), zero, compressed]
                },
                FetchBatch { host_range: Some((5000, 5010)), extents: vec![data(200, 10, 5000)] },
            ]
        );
        // Long extents are split at the fetch limit; zero-only plans fetch nothing.
        let batches = plan_fetches(&[data(0, 25, 0)], 10, 0);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].host_range, Some((20, 25)));
        let batches = plan_fetches(&[zero], 10, 0);
        assert_eq!(batches, vec![FetchBatch { host_range: None, extents: vec![zero] }]);
    }

    #[test]
    fn locates_sources() {
        assert!(matches!(locate("http://x/y").unwrap(), Location::Http(_)));
        assert!(matches!(locate("HTTPS://x/y").unwrap(), Location::Http(_)));
        match locate("file:///var/tmp/a%20b.img").unwrap() {
            Location::File(path) => assert_eq!(path, Path::new("/var/tmp/a b.img")),
            Location::Http(_) => panic!("not a file"),
        }
        match locate("/srv/image.raw").unwrap() {
            Location::File(path) => assert_eq!(path, Path::new("/srv/image.raw")),
            Location::Http(_) => panic!("not a file"),
        }
        assert!(locate("ftp://x/y").is_err());
        assert!(locate("").is_err());
    }
}
