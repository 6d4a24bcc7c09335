//! The disk side of a write: a sequential writer that never passes the
//! target's end, writes in large aligned chunks, can skip zeroes on a
//! target known to be zeroed, and syncs before it reports success.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::write::Progress;
use crate::{format, ImageError};

const MIB: u64 = 1 << 20;
/// Written data this far behind the write position is dropped from the
/// page cache (its writeback, started when it was written, is done by then).
const WRITEBACK_LAG: u64 = 32 * MIB;

/// The size of a block device or regular file, in bytes (for a file: its
/// current length; create sparse targets with `set_len`).
pub fn device_size(target: &Path) -> Result<u64, ImageError> {
    let context = || format!("finding the size of {}", target.display());
    let mut file = File::open(target).map_err(|e| ImageError::io(context(), e))?;
    file.seek(SeekFrom::End(0)).map_err(|e| ImageError::io(context(), e))
}

/// Zeroes the first and the last MiB of the target (MBR, GPT and its
/// backup), so that a failed write does not leave a half-bootable disk.
pub fn wipe_partition_tables(target: &Path) -> Result<(), ImageError> {
    let size = device_size(target)?;
    let context = || format!("wiping partition tables of {}", target.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(|e| ImageError::io(context(), e))?;
    let zeroes = vec![0u8; MIB as usize];
    let head = size.min(MIB);
    let tail_start = size.saturating_sub(MIB).max(head);
    for (start, end) in [(0, head), (tail_start, size)] {
        let len = (end - start) as usize;
        file.write_all_at(&zeroes[..len], start).map_err(|e| ImageError::io(context(), e))?;
    }
    file.sync_all().map_err(|e| ImageError::io(context(), e))
}

/// Writes a stream of bytes to `target` from offset 0, in `chunk`-sized
/// aligned writes.
pub(crate) struct TargetWriter {
    file: File,
    path: PathBuf,
    size: u64,
    /// Target offset of `buffer[0]`.
    buffer_offset: u64,
    buffer: Vec<u8>,
    filled: usize,
    target_zeroed: bool,
    /// Refuse a decompressed stream that turns out to be another container.
    check_inner_format: Option<format::ImageFormat>,
    bytes_written: u64,
    /// Where the next range to drop from the page cache starts.
    dropped_upto: u64,
    progress: Progress,
}

impl TargetWriter {
    pub(crate) fn open(
        target: &Path,
        size: u64,
        chunk: usize,
        target_zeroed: bool,
        progress: Progress,
    ) -> Result<Self, ImageError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| ImageError::io(format!("opening {} for writing", target.display()), e))?;
        Ok(Self {
            file,
            path: target.to_owned(),
            size,
            buffer_offset: 0,
            buffer: vec![0; chunk],
            filled: 0,
            target_zeroed,
            check_inner_format: None,
            bytes_written: 0,
            dropped_upto: 0,
            progress,
        })
    }

    /// Makes the first bytes written be checked for a nested image format
    /// (a qcow2 inside gzip, say), which would be refused.
    pub(crate) fn check_inner_format(&mut self, outer: format::ImageFormat) {
        self.check_inner_format = Some(outer);
    }

    fn position(&self) -> u64 {
        self.buffer_offset + self.filled as u64
    }

    fn too_large(&self, needed: u64) -> ImageError {
        ImageError::TooLarge { target: self.path.clone(), needed, available: self.size }
    }

    /// Reads from `reader` into the buffer, writing full chunks out.
    /// Returns false at the end of the reader.
    pub(crate) fn fill_from(&mut self, reader: &mut dyn Read) -> Result<bool, ReadOrImageError> {
        let room = self.size - self.position();
        if room == 0 {
            // The target is full: the image must end here.
            let mut probe = [0u8; 1];
            return match reader.read(&mut probe).map_err(ReadOrImageError::Read)? {
                0 => Ok(false),
                _ => Err(ReadOrImageError::Image(self.too_large(self.size + 1))),
            };
        }
        let end = self.buffer.len().min(self.filled + usize::try_from(room).unwrap_or(usize::MAX));
        let read =
            reader.read(&mut self.buffer[self.filled..end]).map_err(ReadOrImageError::Read)?;
        if read == 0 {
            return Ok(false);
        }
        self.filled += read;
        if self.filled == self.buffer.len() {
            self.flush().map_err(ReadOrImageError::Image)?;
        }
        Ok(true)
    }

    /// Appends bytes.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        let needed = self.position() + data.len() as u64;
        if needed > self.size {
            return Err(self.too_large(needed));
        }
        while !data.is_empty() {
            let take = data.len().min(self.buffer.len() - self.filled);
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == self.buffer.len() {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Appends `len` zero bytes, skipped on a target known to be zeroed.
    pub(crate) fn write_zeroes(&mut self, mut len: u64) -> Result<(), ImageError> {
        let needed = self.position() + len;
        if needed > self.size {
            return Err(self.too_large(needed));
        }
        if self.target_zeroed {
            self.flush()?;
            self.buffer_offset += len;
            self.progress.add_written(len);
            return Ok(());
        }
        while len > 0 {
            let take = (len.min((self.buffer.len() - self.filled) as u64)) as usize;
            self.buffer[self.filled..self.filled + take].fill(0);
            self.filled += take;
            len -= take as u64;
            if self.filled == self.buffer.len() {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ImageError> {
        if self.filled == 0 {
            return Ok(());
        }
        let data = &self.buffer[..self.filled];
        if let Some(outer) = self.check_inner_format.take() {
            let inner = format::detect_supported(data).map_err(|_| {
                ImageError::unsupported(format!(
                    "the {outer} stream contains a VMDK, VHD, VHDX or qcow image, not a raw disk"
                ))
            })?;
            if inner != format::ImageFormat::Raw {
                return Err(ImageError::unsupported(format!(
                    "the {outer} stream contains a {inner} image, not a raw disk; decompress it and give the {inner} image instead"
                )));
            }
        }
        let skip = self.target_zeroed && data.iter().all(|&byte| byte == 0);
        if !skip {
            self.file.write_all_at(data, self.buffer_offset).map_err(|e| {
                ImageError::io(
                    format!(
                        "writing {} bytes at offset {} of {}",
                        data.len(),
                        self.buffer_offset,
                        self.path.display()
                    ),
                    e,
                )
            })?;
            self.bytes_written += data.len() as u64;
            self.written_back(self.buffer_offset, data.len() as u64);
        }
        self.progress.add_written(self.filled as u64);
        self.buffer_offset += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    /// Streams what was just written to the disk instead of letting it pile
    /// up as dirty pages: starts writeback of `offset..offset + len` now
    /// and drops data [`WRITEBACK_LAG`] behind from the page cache. The
    /// final sync then has little left to do, the page cache (RAM in a
    /// ramdisk) does not fill with the image, and the kernel reuses the
    /// same few pages instead of touching fresh memory for every write.
    /// Advice only: failures are ignored.
    fn written_back(&mut self, offset: u64, len: u64) {
        advise_dont_need(&self.file, offset, len);
        let behind = (offset + len).saturating_sub(WRITEBACK_LAG);
        if behind > self.dropped_upto {
            advise_dont_need(&self.file, self.dropped_upto, behind - self.dropped_upto);
            self.dropped_upto = behind;
        }
    }

    /// Writes what is buffered and syncs the target; returns the bytes
    /// written (zeroes skipped on a zeroed target not counted) and the
    /// image's length.
    pub(crate) fn finish(mut self) -> Result<(u64, u64), ImageError> {
        self.flush()?;
        self.file
            .sync_all()
            .map_err(|e| ImageError::io(format!("syncing {}", self.path.display()), e))?;
        Ok((self.bytes_written, self.buffer_offset))
    }
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: starts writeback of the dirty
/// pages of the range and drops its clean ones.
#[cfg(target_os = "linux")]
fn advise_dont_need(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_dont_need(_file: &File, _offset: u64, _len: u64) {}

/// A failure while filling from a reader: the reader's (decoder or
/// download) or the target's.
pub(crate) enum ReadOrImageError {
    Read(std::io::Error),
    Image(ImageError),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn never_writes_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        let file = File::create(&path).unwrap();
        file.set_len(10).unwrap();
        let mut writer = TargetWriter::open(&path, 10, 4, false, Progress::default()).unwrap();
        writer.write(b"0123456").unwrap();
        assert!(matches!(writer.write(b"7890"), Err(ImageError::TooLarge { needed: 11, .. })));
        writer.write(b"789").unwrap();
        let mut rest: &[u8] = b"x";
        assert!(matches!(
            writer.fill_from(&mut rest),
            Err(ReadOrImageError::Image(ImageError::TooLarge { .. }))
        ));
        assert_eq!(writer.finish().unwrap(), (10, 10));
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn wipes_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0xffu8; 3 * MIB as usize]).unwrap();
        wipe_partition_tables(&path).unwrap();
        let data = std::fs::read(&path).unwrap();
        assert!(data[..MIB as usize].iter().all(|&b| b == 0));
        assert!(data[MIB as usize..2 * MIB as usize].iter().all(|&b| b == 0xff));
        assert!(data[2 * MIB as usize..].iter().all(|&b| b == 0));
        assert_eq!(device_size(&path).unwrap(), 3 * MIB);
        // Small targets are wiped whole.
        std::fs::write(&path, [1u8; 100]).unwrap();
        wipe_partition_tables(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 100]);
    }
}
