//! A qcow2 reader (versions 2 and 3) written for converting images to raw
//! disks: header and table parsing that bounds-checks every offset and size
//! against the file (hostile input yields errors, never panics or huge
//! allocations), guest-ordered [`Extent`]s per L2 table, and decompression
//! of compressed clusters (deflate and zstd).
//!
//! Refused with [`ImageError::UnsupportedFormat`]: backing files, encryption,
//! external data files, extended L2 entries, images marked corrupt, unknown
//! incompatible features. Unallocated clusters read as zeroes (there is no
//! backing file to fall back on). Snapshots are ignored: the active L1
//! table is the disk's current content. Refcounts are never read, so an
//! image left "dirty" by a crash is still readable.

use bytes::Bytes;

use crate::access::RandomAccess;
use crate::ImageError;

const MAGIC: u32 = 0x5146_49fb;
const V2_HEADER_LEN: usize = 72;
const V3_HEADER_LEN: usize = 104;
/// How much of the file is read to parse the header (which must fit in
/// the first cluster, itself at least 512 bytes).
const HEADER_READ_LEN: u64 = 512;
/// QEMU's own cap on the L1 table (32 MiB).
const MAX_L1_BYTES: u64 = 32 << 20;
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// Bits 9..=55 of L1 and standard L2 entries.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1_RESERVED_MASK: u64 = 0x7f00_0000_0000_01fe;
const L2_COMPRESSED: u64 = 1 << 62;
const L2_ZERO: u64 = 1;
const L2_RESERVED_MASK: u64 = 0x3f00_0000_0000_01fe;
/// The largest zstd window accepted in a compressed cluster (QEMU uses at
/// most the cluster size, at most 2 MiB).
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

mod incompatible {
    pub const DIRTY: u64 = 1 << 0;
    pub const CORRUPT: u64 = 1 << 1;
    pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    pub const EXTENDED_L2: u64 = 1 << 4;
    pub const KNOWN: u64 = DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;
}

/// How compressed clusters are compressed (one type per image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qcow2Compression {
    /// Raw deflate (compression type 0, the default).
    Deflate,
    /// zstd frames (compression type 1).
    Zstd,
}

/// The fields of a qcow2 header this reader uses, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    pub version: u32,
    pub cluster_bits: u32,
    /// The guest disk's size in bytes.
    pub virtual_size: u64,
    pub l1_table_offset: u64,
    /// Entries in the L1 table as stored (at least [`Qcow2Header::l1_entries_needed`]).
    pub l1_size: u32,
    pub incompatible_features: u64,
    pub compression: Qcow2Compression,
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, ImageError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| ImageError::invalid("qcow2 header is truncated"))
}

fn be_u64(bytes: &[u8], at: usize) -> Result<u64, ImageError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| ImageError::invalid("qcow2 header is truncated"))
}

impl Qcow2Header {
    /// Parses and validates the header at the start of `bytes` (give at
    /// least 512 bytes when the file has them) of a file of `file_len` bytes.
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Self, ImageError> {
        if be_u32(bytes, 0)? != MAGIC {
            return Err(ImageError::invalid("not a qcow2 image (bad magic)"));
        }
        let version = be_u32(bytes, 4)?;
        match version {
            2 | 3 => {}
            1 => return Err(ImageError::unsupported("qcow version 1 images are not supported")),
            other => return Err(ImageError::unsupported(format!("qcow2 version {other}"))),
        }
        let backing_file_offset = be_u64(bytes, 8)?;
        let cluster_bits = be_u32(bytes, 20)?;
        let virtual_size = be_u64(bytes, 24)?;
        let crypt_method = be_u32(bytes, 32)?;
        let l1_size = be_u32(bytes, 36)?;
        let l1_table_offset = be_u64(bytes, 40)?;
        if backing_file_offset != 0 {
            return Err(ImageError::unsupported(
                "the qcow2 image has a backing file; flatten it first (qemu-img convert without -B)",
            ));
        }
        if crypt_method != 0 {
            return Err(ImageError::unsupported(format!(
                "the qcow2 image is encrypted (method {crypt_method}); decrypt it first"
            )));
        }
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(ImageError::invalid(format!(
                "qcow2 cluster_bits {cluster_bits} is outside {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS}"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;

        let (incompatible_features, compression) = if version == 2 {
            if bytes.len() < V2_HEADER_LEN {
                return Err(ImageError::invalid("qcow2 header is truncated"));
            }
            (0, Qcow2Compression::Deflate)
        } else {
            let incompatible_features = be_u64(bytes, 72)?;
            let header_length = be_u32(bytes, 100)?;
            if (header_length as usize) < V3_HEADER_LEN || u64::from(header_length) > cluster_size {
                return Err(ImageError::invalid(format!(
                    "qcow2 header length {header_length} is not between {V3_HEADER_LEN} and the cluster size"
                )));
            }
            let compression_type = if header_length as usize > V3_HEADER_LEN {
                *bytes.get(V3_HEADER_LEN).ok_or_else(|| {
                    ImageError::invalid("qcow2 header is truncated (compression type)")
                })?
            } else {
                0
            };
            let compression = match compression_type {
                0 => Qcow2Compression::Deflate,
                1 => Qcow2Compression::Zstd,
                other => {
                    return Err(ImageError::unsupported(format!(
                        "qcow2 compression type {other} is not supported"
                    )))
                }
            };
            let declared = incompatible_features & incompatible::COMPRESSION_TYPE != 0;
            if declared != (compression != Qcow2Compression::Deflate) {
                return Err(ImageError::invalid(
                    "qcow2 compression type and its incompatible feature bit disagree",
                ));
            }
            (incompatible_features, compression)
        };
        check_incompatible_features(incompatible_features)?;

        let header = Self {
            version,
            cluster_bits,
            virtual_size,
            l1_table_offset,
            l1_size,
            incompatible_features,
            compression,
        };
        header.check_l1(file_len)?;
        Ok(header)
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries (clusters) per L2 table.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / 8
    }

    /// Guest bytes covered by one L2 table.
    pub fn l2_coverage(&self) -> u64 {
        self.cluster_size() * self.l2_entries()
    }

    /// L1 entries needed to map the virtual size.
    pub fn l1_entries_needed(&self) -> u64 {
        self.virtual_size.div_ceil(self.l2_coverage())
    }

    fn check_l1(&self, file_len: u64) -> Result<(), ImageError> {
        let needed = self.l1_entries_needed();
        if u64::from(self.l1_size) < needed {
            return Err(ImageError::invalid(format!(
                "qcow2 L1 table has {} entries, {needed} are needed for a {}-byte disk",
                self.l1_size, self.virtual_size
            )));
        }
        let needed_bytes = needed * 8;
        if needed_bytes > MAX_L1_BYTES {
            return Err(ImageError::invalid(format!(
                "qcow2 L1 table of {needed_bytes} bytes is larger than the {MAX_L1_BYTES} allowed"
            )));
        }
        if !self.l1_table_offset.is_multiple_of(self.cluster_size()) && needed > 0 {
            return Err(ImageError::invalid("qcow2 L1 table offset is not cluster-aligned"));
        }
        let end = self.l1_table_offset.checked_add(needed_bytes);
        if end.is_none_or(|end| end > file_len) {
            return Err(ImageError::invalid(format!(
                "qcow2 L1 table at {} ({needed_bytes} bytes) is past the end of the {file_len}-byte file; is it truncated?",
                self.l1_table_offset
            )));
        }
        Ok(())
    }
}

fn check_incompatible_features(features: u64) -> Result<(), ImageError> {
    let refuse = |what: &str| Err(ImageError::unsupported(format!("qcow2 image {what}")));
    if features & incompatible::CORRUPT != 0 {
        return refuse("is marked corrupt; repair it with qemu-img check -r all");
    }
    if features & incompatible::EXTERNAL_DATA_FILE != 0 {
        return refuse("keeps its data in an external data file");
    }
    if features & incompatible::EXTENDED_L2 != 0 {
        return refuse("uses extended L2 entries (subclusters); convert it without extended_l2");
    }
    let unknown = features & !incompatible::KNOWN;
    if unknown != 0 {
        return refuse(&format!("uses unknown incompatible features {unknown:#x}"));
    }
    Ok(())
}

/// Where one guest cluster's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMapping {
    /// Reads as zeroes (zero flag, or unallocated with no backing file).
    Zero,
    /// Stored uncompressed at this cluster-aligned offset.
    Data { host_offset: u64 },
    /// Stored compressed in `len` bytes at `host_offset` (`len` may include
    /// bytes past the compressed stream; decoders stop on their own).
    Compressed { host_offset: u64, len: u64 },
}

/// Decodes an L1 entry into the offset of its L2 table (None: unallocated).
pub fn parse_l1_entry(
    entry: u64,
    header: &Qcow2Header,
    file_len: u64,
) -> Result<Option<u64>, ImageError> {
    if entry & L1_RESERVED_MASK != 0 {
        return Err(ImageError::invalid(format!(
            "qcow2 L1 entry {entry:#x} has reserved bits set"
        )));
    }
    let offset = entry & OFFSET_MASK;
    if offset == 0 {
        return Ok(None);
    }
    let cluster_size = header.cluster_size();
    if !offset.is_multiple_of(cluster_size) {
        return Err(ImageError::invalid(format!(
            "qcow2 L2 table offset {offset:#x} is not cluster-aligned"
        )));
    }
    if offset.checked_add(cluster_size).is_none_or(|end| end > file_len) {
        return Err(ImageError::invalid(format!(
            "qcow2 L2 table at {offset:#x} is past the end of the {file_len}-byte file; is it truncated?"
        )));
    }
    Ok(Some(offset))
}

/// Decodes a (standard, 8-byte) L2 entry.
pub fn parse_l2_entry(
    entry: u64,
    header: &Qcow2Header,
    file_len: u64,
) -> Result<ClusterMapping, ImageError> {
    if entry & L2_COMPRESSED != 0 {
        // Bits 0..x: host offset; x..62: additional 512-byte sectors.
        let offset_bits = 62 - (header.cluster_bits - 8);
        let host_offset = entry & ((1u64 << offset_bits) - 1);
        let sector_mask = (1u64 << (header.cluster_bits - 8)) - 1;
        let sectors = ((entry >> offset_bits) & sector_mask) + 1;
        let len = sectors * 512 - (host_offset & 511);
        if host_offset >= file_len {
            return Err(ImageError::invalid(format!(
                "qcow2 compressed cluster at {host_offset:#x} is past the end of the {file_len}-byte file; is it truncated?"
            )));
        }
        // The sector count is rounded up and may reach past the end of the file.
        let len = len.min(file_len - host_offset);
        return Ok(ClusterMapping::Compressed { host_offset, len });
    }
    if entry & L2_RESERVED_MASK != 0 {
        return Err(ImageError::invalid(format!(
            "qcow2 L2 entry {entry:#x} has reserved bits set"
        )));
    }
    let host_offset = entry & OFFSET_MASK;
    if entry & L2_ZERO != 0 || host_offset == 0 {
        return Ok(ClusterMapping::Zero);
    }
    let cluster_size = header.cluster_size();
    if !host_offset.is_multiple_of(cluster_size) {
        return Err(ImageError::invalid(format!(
            "qcow2 data cluster offset {host_offset:#x} is not cluster-aligned"
        )));
    }
    // The end is checked per extent: the last guest cluster may be partial.
    if host_offset >= file_len {
        return Err(ImageError::invalid(format!(
            "qcow2 data cluster at {host_offset:#x} is past the end of the {file_len}-byte file; is it truncated?"
        )));
    }
    Ok(ClusterMapping::Data { host_offset })
}

/// A run of guest bytes with one kind of backing, in guest order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub guest_offset: u64,
    pub len: u64,
    pub kind: ExtentKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    Zero,
    /// `len` bytes stored contiguously at `host_offset`.
    Data {
        host_offset: u64,
    },
    /// One cluster, compressed in `compressed_len` bytes at `host_offset`.
    Compressed {
        host_offset: u64,
        compressed_len: u64,
    },
}

impl Extent {
    /// The host byte range to fetch, if any.
    pub fn host_range(&self) -> Option<(u64, u64)> {
        match self.kind {
            ExtentKind::Zero => None,
            ExtentKind::Data { host_offset } => Some((host_offset, host_offset + self.len)),
            ExtentKind::Compressed { host_offset, compressed_len } => {
                Some((host_offset, host_offset + compressed_len))
            }
        }
    }

    /// Appends `next` to `self` when both are zeroes, or data stored back to back.
    pub fn try_merge(&mut self, next: &Extent) -> bool {
        if self.guest_offset + self.len != next.guest_offset {
            return false;
        }
        let mergeable = match (self.kind, next.kind) {
            (ExtentKind::Zero, ExtentKind::Zero) => true,
            (ExtentKind::Data { host_offset }, ExtentKind::Data { host_offset: next_host }) => {
                host_offset + self.len == next_host
            }
            _ => false,
        };
        if mergeable {
            self.len += next.len;
        }
        mergeable
    }
}

/// An open qcow2 image over some [`RandomAccess`].
#[derive(Debug)]
pub struct Qcow2Image<A> {
    access: A,
    header: Qcow2Header,
}

impl<A: RandomAccess> Qcow2Image<A> {
    /// Reads and validates the header.
    pub async fn open(access: A) -> Result<Self, ImageError> {
        let file_len = access.len();
        let head = access.read_at(0, HEADER_READ_LEN.min(file_len) as usize).await?;
        let header = Qcow2Header::parse(&head, file_len)?;
        Ok(Self { access, header })
    }

    pub fn header(&self) -> &Qcow2Header {
        &self.header
    }

    pub fn virtual_size(&self) -> u64 {
        self.header.virtual_size
    }

    pub fn access(&self) -> &A {
        &self.access
    }

    /// The L2 table offsets of the entries that map the virtual size
    /// (None: the whole table's range reads as zeroes).
    pub async fn read_l1(&self) -> Result<Vec<Option<u64>>, ImageError> {
        let needed = self.header.l1_entries_needed() as usize;
        let raw = self.access.read_at(self.header.l1_table_offset, needed * 8).await?;
        let file_len = self.access.len();
        raw.chunks_exact(8)
            .map(|bytes| {
                let entry = u64::from_be_bytes(bytes.try_into().unwrap_or_default());
                parse_l1_entry(entry, &self.header, file_len)
            })
            .collect()
    }

    /// The merged guest-ordered extents covered by L1 entry `l1_index`,
    /// clipped to the virtual size, reading the L2 table if there is one.
    pub async fn table_extents(
        &self,
        l1_index: u64,
        l2_offset: Option<u64>,
    ) -> Result<Vec<Extent>, ImageError> {
        let coverage = self.header.l2_coverage();
        let start = l1_index.saturating_mul(coverage);
        let end = start.saturating_add(coverage).min(self.header.virtual_size);
        if start >= end {
            return Ok(Vec::new());
        }
        let Some(l2_offset) = l2_offset else {
            return Ok(vec![Extent {
                guest_offset: start,
                len: end - start,
                kind: ExtentKind::Zero,
            }]);
        };
        let cluster_size = self.header.cluster_size();
        let table = self.access.read_at(l2_offset, cluster_size as usize).await?;
        self.extents_from_l2(&table, start, end)
    }

    fn extents_from_l2(
        &self,
        table: &Bytes,
        start: u64,
        end: u64,
    ) -> Result<Vec<Extent>, ImageError> {
        let cluster_size = self.header.cluster_size();
        let file_len = self.access.len();
        let mut extents: Vec<Extent> = Vec::new();
        let mut guest_offset = start;
        for bytes in table.chunks_exact(8) {
            if guest_offset >= end {
                break;
            }
            let len = cluster_size.min(end - guest_offset);
            let entry = u64::from_be_bytes(bytes.try_into().unwrap_or_default());
            let kind = match parse_l2_entry(entry, &self.header, file_len)? {
                ClusterMapping::Zero => ExtentKind::Zero,
                ClusterMapping::Data { host_offset } => {
                    if host_offset.checked_add(len).is_none_or(|end| end > file_len) {
                        return Err(ImageError::invalid(format!(
                            "qcow2 data cluster at {host_offset:#x} is past the end of the {file_len}-byte file; is it truncated?"
                        )));
                    }
                    ExtentKind::Data { host_offset }
                }
                ClusterMapping::Compressed { host_offset, len: compressed_len } => {
                    ExtentKind::Compressed { host_offset, compressed_len }
                }
            };
            let extent = Extent { guest_offset, len, kind };
            if !extents.last_mut().is_some_and(|last| last.try_merge(&extent)) {
                extents.push(extent);
            }
            guest_offset += len;
        }
        Ok(extents)
    }
}

/// Decompresses compressed clusters, reusing its decoders' state.
pub struct ClusterDecompressor {
    compression: Qcow2Compression,
    deflate: flate2::Decompress,
    zstd: ruzstd::decoding::FrameDecoder,
}

impl ClusterDecompressor {
    pub fn new(compression: Qcow2Compression) -> Self {
        let mut zstd = ruzstd::decoding::FrameDecoder::new();
        zstd.set_max_window_size(MAX_ZSTD_WINDOW);
        Self { compression, deflate: flate2::Decompress::new(false), zstd }
    }

    /// Fills `cluster` (a whole cluster) from compressed `data`.
    pub fn decompress(&mut self, data: &[u8], cluster: &mut [u8]) -> Result<(), ImageError> {
        match self.compression {
            Qcow2Compression::Deflate => {
                self.deflate.reset(false);
                let status =
                    self.deflate.decompress(data, cluster, flate2::FlushDecompress::Finish);
                let produced = self.deflate.total_out();
                match status {
                    Ok(_) if produced == cluster.len() as u64 => Ok(()),
                    Ok(_) => Err(ImageError::invalid(format!(
                        "qcow2 deflate-compressed cluster decodes to {produced} bytes, not {}",
                        cluster.len()
                    ))),
                    Err(error) => Err(ImageError::invalid(format!(
                        "qcow2 deflate-compressed cluster is corrupt: {error}"
                    ))),
                }
            }
            Qcow2Compression::Zstd => {
                use std::io::Read;
                let mut decoder =
                    ruzstd::decoding::StreamingDecoder::new_with_decoder(data, &mut self.zstd)
                        .map_err(|e| {
                            ImageError::invalid(format!(
                                "qcow2 zstd-compressed cluster is corrupt: {e}"
                            ))
                        })?;
                decoder.read_exact(cluster).map_err(|e| {
                    ImageError::invalid(format!("qcow2 zstd-compressed cluster is corrupt: {e}"))
                })
            }
        }
    }
}

/// Walks every table of an image held in memory, decompressing compressed
/// clusters, as the converter would; for fuzzing and property tests.
/// `max_clusters` bounds the work a hostile image can ask for.
pub async fn walk(data: Bytes, max_clusters: u64) -> Result<u64, ImageError> {
    let image = Qcow2Image::open(crate::access::MemoryAccess::new(data)).await?;
    let cluster_size = image.header().cluster_size();
    let mut decompressor = ClusterDecompressor::new(image.header().compression);
    let mut cluster = vec![0; cluster_size as usize];
    let mut budget = max_clusters;
    let mut mapped = 0;
    for (index, l2_offset) in image.read_l1().await?.into_iter().enumerate() {
        let coverage_clusters = image.header().l2_entries();
        if budget < coverage_clusters {
            break;
        }
        budget -= coverage_clusters;
        for extent in image.table_extents(index as u64, l2_offset).await? {
            if let ExtentKind::Compressed { host_offset, compressed_len } = extent.kind {
                let data = image.access().read_at(host_offset, compressed_len as usize).await?;
                decompressor.decompress(&data, &mut cluster)?;
            } else if let Some((start, end)) = extent.host_range() {
                image.access().read_at(start, (end - start) as usize).await?;
            }
            mapped += extent.len;
        }
    }
    Ok(mapped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::access::MemoryAccess;

    /// A minimal v3 image: 64 KiB clusters, header, L1 at cluster 1, L2 at
    /// cluster 2, data at cluster 3 mapped to guest cluster 1.
    fn tiny_image(virtual_size: u64) -> Vec<u8> {
        let cluster = 65536usize;
        let mut image = vec![0u8; cluster * 4];
        image[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        image[4..8].copy_from_slice(&3u32.to_be_bytes());
        image[20..24].copy_from_slice(&16u32.to_be_bytes());
        image[24..32].copy_from_slice(&virtual_size.to_be_bytes());
        image[36..40].copy_from_slice(&1u32.to_be_bytes());
        image[40..48].copy_from_slice(&(cluster as u64).to_be_bytes());
        image[100..104].copy_from_slice(&104u32.to_be_bytes());
        let l1_entry = (2 * cluster as u64) | (1 << 63);
        image[cluster..cluster + 8].copy_from_slice(&l1_entry.to_be_bytes());
        let l2_entry = (3 * cluster as u64) | (1 << 63);
        image[2 * cluster + 8..2 * cluster + 16].copy_from_slice(&l2_entry.to_be_bytes());
        image[3 * cluster..].fill(0xab);
        image
    }

    #[tokio::test]
    async fn maps_a_tiny_image() {
        let image = Qcow2Image::open(MemoryAccess::new(tiny_image(3 * 65536 + 100))).await.unwrap();
        assert_eq!(image.header().version, 3);
        assert_eq!(image.virtual_size(), 3 * 65536 + 100);
        let l1 = image.read_l1().await.unwrap();
        assert_eq!(l1, vec![Some(2 * 65536)]);
        let extents = image.table_extents(0, l1[0]).await.unwrap();
        assert_eq!(
            extents,
            vec![
                Extent { guest_offset: 0, len: 65536, kind: ExtentKind::Zero },
                Extent {
                    guest_offset: 65536,
                    len: 65536,
                    kind: ExtentKind::Data { host_offset: 3 * 65536 }
                },
                Extent { guest_offset: 2 * 65536, len: 65536 + 100, kind: ExtentKind::Zero },
            ]
        );
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_read() {
        let mut backing = tiny_image(65536);
        backing[8..16].copy_from_slice(&512u64.to_be_bytes());
        let err = Qcow2Image::open(MemoryAccess::new(backing)).await.unwrap_err();
        assert!(err.to_string().contains("backing file"), "{err}");

        let mut encrypted = tiny_image(65536);
        encrypted[32..36].copy_from_slice(&2u32.to_be_bytes());
        let err = Qcow2Image::open(MemoryAccess::new(encrypted)).await.unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");

        let mut extended = tiny_image(65536);
        extended[72..80].copy_from_slice(&incompatible::EXTENDED_L2.to_be_bytes());
        let err = Qcow2Image::open(MemoryAccess::new(extended)).await.unwrap_err();
        assert!(err.to_string().contains("extended L2"), "{err}");

        let mut v1 = tiny_image(65536);
        v1[4..8].copy_from_slice(&1u32.to_be_bytes());
        let err = Qcow2Image::open(MemoryAccess::new(v1)).await.unwrap_err();
        assert!(matches!(err, ImageError::UnsupportedFormat(_)), "{err}");
    }

    #[tokio::test]
    async fn refuses_tables_past_the_end() {
        // A disk so large that its L1 table cannot be in the file.
        let err = Qcow2Image::open(MemoryAccess::new(tiny_image(1 << 50))).await.unwrap_err();
        assert!(matches!(err, ImageError::InvalidImage(_)), "{err}");
        // An L2 table pointer past the end.
        let mut image = tiny_image(65536);
        image[65536..65544].copy_from_slice(&(1u64 << 40).to_be_bytes());
        let image = Qcow2Image::open(MemoryAccess::new(image)).await.unwrap();
        assert!(image.read_l1().await.is_err());
        // Truncated header.
        let err = Qcow2Image::open(MemoryAccess::new(&b"QFI\xfb\0\0\0\x03"[..])).await.unwrap_err();
        assert!(matches!(err, ImageError::InvalidImage(_)), "{err}");
    }

    #[test]
    fn decodes_compressed_entries() {
        let header = Qcow2Header::parse(&tiny_image(65536), 4 * 65536).unwrap();
        // cluster_bits 16: offset in bits 0..54, sector count above.
        let entry = L2_COMPRESSED | (3u64 << 54) | 0x30100;
        assert_eq!(
            parse_l2_entry(entry, &header, 4 * 65536).unwrap(),
            ClusterMapping::Compressed { host_offset: 0x30100, len: 4 * 512 - 0x100 }
        );
        // Clipped to the end of the file.
        assert_eq!(
            parse_l2_entry(entry, &header, 0x30200).unwrap(),
            ClusterMapping::Compressed { host_offset: 0x30100, len: 0x100 }
        );
        assert!(parse_l2_entry(L2_COMPRESSED | 0x40000, &header, 0x40000).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
                let _ = futures::executor::block_on(walk(Bytes::from(data), 1 << 16));
            }

            #[test]
            fn mutated_headers_never_panic(
                edits in proptest::collection::vec((0usize..3, 0usize..512, any::<u8>()), 1..32),
                virtual_size in 0u64..(1 << 24),
            ) {
                // Bytes of the header, the L1 table and the L2 table.
                let mut image = tiny_image(virtual_size);
                for (region, at, byte) in edits {
                    image[region * 65536 + at] = byte;
                }
                let _ = futures::executor::block_on(walk(Bytes::from(image), 1 << 16));
            }
        }
    }
}
