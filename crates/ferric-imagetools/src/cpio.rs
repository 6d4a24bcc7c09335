//! The newc ("SVR4, no CRC") cpio format the kernel unpacks as an initramfs:
//! [`CpioWriter`] writes entries one by one, [`Tree`] collects a whole file
//! tree (parents created implicitly, sorted, every entry owned by root) and
//! writes it gzip-compressed.
//!
//! Device nodes are plain headers, so no privileges are needed to make them.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::BuildError;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;

/// Writes a newc archive: headers, NUL-terminated names and data, each
/// padded to four bytes, then the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
    mtime: u32,
}

/// One header's fields (mode includes the file type bits).
struct Header<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    /// A writer stamping every entry with `mtime` (seconds since the epoch;
    /// a fixed value keeps archives reproducible).
    pub fn new(out: W, mtime: u32) -> CpioWriter<W> {
        CpioWriter { out, offset: 0, next_ino: 1, mtime }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let rest = (4 - (self.offset % 4) as usize) % 4;
        self.write(&[0u8; 3][..rest])
    }

    fn header(&mut self, header: Header<'_>) -> io::Result<()> {
        let size = u32::try_from(header.size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: newc cpio cannot hold files of 4 GiB or more", header.name),
            )
        })?;
        if header.name.as_bytes().contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "NUL in a file name"));
        }
        let ino = if header.name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let namesize = header.name.len() as u32 + 1;
        let text = format!(
            "{MAGIC}{ino:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{namesize:08X}{:08X}",
            header.mode,
            0, // uid
            0, // gid
            header.nlink,
            self.mtime,
            0, // devmajor
            0, // devminor
            header.rdev.0,
            header.rdev.1,
            0, // check
        );
        self.write(text.as_bytes())?;
        self.write(header.name.as_bytes())?;
        self.write(&[0])?;
        self.pad()
    }

    /// A directory; `mode` is the permission bits.
    pub fn directory(&mut self, name: &str, mode: u32) -> io::Result<()> {
        self.header(Header {
            name,
            mode: S_IFDIR | (mode & 0o7777),
            nlink: 2,
            size: 0,
            rdev: (0, 0),
        })
    }

    /// A regular file with its whole content.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.file_from_reader(name, mode, data.len() as u64, &mut &data[..])
    }

    /// A regular file of exactly `size` bytes read from `reader`.
    pub fn file_from_reader(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        reader: &mut dyn Read,
    ) -> io::Result<()> {
        self.header(Header {
            name,
            mode: S_IFREG | (mode & 0o7777),
            nlink: 1,
            size,
            rdev: (0, 0),
        })?;
        let copied = io::copy(&mut reader.take(size), &mut CountingWriter(self))?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: expected {size} bytes, got {copied}"),
            ));
        }
        self.pad()
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.header(Header {
            name,
            mode: S_IFLNK | 0o777,
            nlink: 1,
            size: target.len() as u64,
            rdev: (0, 0),
        })?;
        self.write(target.as_bytes())?;
        self.pad()
    }

    /// A device node or FIFO: `kind` is [`S_IFCHR`], [`S_IFBLK`] or [`S_IFIFO`].
    pub fn special(
        &mut self,
        name: &str,
        kind: u32,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.header(Header {
            name,
            mode: kind | (mode & 0o7777),
            nlink: 1,
            size: 0,
            rdev: (major, minor),
        })
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(Header { name: TRAILER, mode: 0, nlink: 1, size: 0, rdev: (0, 0) })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

struct CountingWriter<'a, W: Write>(&'a mut CpioWriter<W>);

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.0.out.write(buf)?;
        self.0.offset += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}

/// Where a file's content comes from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    /// Read when the archive is written.
    Path(PathBuf),
}

/// One entry of a [`Tree`].
#[derive(Debug, Clone)]
pub enum Entry {
    Directory { mode: u32 },
    File { mode: u32, content: Content },
    Symlink { target: String },
    Special { kind: u32, mode: u32, major: u32, minor: u32 },
}

/// A file tree for an initramfs, keyed by normalized relative path
/// (`dev/console`). Adding an entry creates missing parent directories
/// (0755); adding a path twice replaces the earlier entry.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// `/a//b/./c` → `a/b/c`; `..` and empty paths are refused.
pub fn normalize(path: &str) -> Result<String, BuildError> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err(BuildError::Input(format!("non-UTF-8 path {path:?}"))),
            },
            Component::ParentDir | Component::Prefix(_) => {
                return Err(BuildError::Input(format!("path {path:?} leaves the archive root")))
            }
        }
    }
    if parts.is_empty() {
        return Err(BuildError::Input(format!("empty path {path:?}")));
    }
    Ok(parts.join("/"))
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// The entries, parents before children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(path, entry)| (path.as_str(), entry))
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        normalize(path).ok().and_then(|path| self.entries.get(&path))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds (or replaces) `path`, creating its parents.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<(), BuildError> {
        let path = normalize(path)?;
        let mut parent = String::new();
        let mut components = path.split('/').peekable();
        while let Some(part) = components.next() {
            if components.peek().is_none() {
                break;
            }
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry::Directory { .. }) => {}
                Some(_) => {
                    return Err(BuildError::Input(format!(
                        "{path}: parent {parent} is not a directory"
                    )))
                }
                None => {
                    self.entries.insert(parent.clone(), Entry::Directory { mode: 0o755 });
                }
            }
        }
        // A directory keeps its children when re-added; anything else replaces.
        if matches!(entry, Entry::Directory { .. }) {
            if let Some(Entry::Directory { mode }) = self.entries.get_mut(&path) {
                if let Entry::Directory { mode: new } = entry {
                    *mode = new;
                }
                return Ok(());
            }
        } else if matches!(self.entries.get(&path), Some(Entry::Directory { .. })) {
            // A directory replaced by something else takes its children along.
            let prefix = format!("{path}/");
            let children: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .map(|(key, _)| key)
                .take_while(|key| key.starts_with(&prefix))
                .cloned()
                .collect();
            for child in children {
                self.entries.remove(&child);
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    pub fn directory(&mut self, path: &str, mode: u32) -> Result<(), BuildError> {
        self.insert(path, Entry::Directory { mode })
    }

    pub fn file_bytes(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), BuildError> {
        self.insert(path, Entry::File { mode, content: Content::Bytes(data) })
    }

    pub fn file_path(&mut self, path: &str, mode: u32, source: &Path) -> Result<(), BuildError> {
        self.insert(path, Entry::File { mode, content: Content::Path(source.to_owned()) })
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), BuildError> {
        self.insert(path, Entry::Symlink { target: target.to_owned() })
    }

    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), BuildError> {
        self.insert(path, Entry::Special { kind: S_IFCHR, mode, major, minor })
    }

    /// Adds a host file or directory (recursively) at `dest`: regular
    /// files, directories, symlinks, device nodes and FIFOs keep their
    /// permission bits; sockets are skipped. Everything becomes root's.
    pub fn add_host_path(&mut self, source: &Path, dest: &str) -> Result<(), BuildError> {
        let meta = std::fs::symlink_metadata(source)
            .map_err(BuildError::io(format!("reading {}", source.display())))?;
        let kind = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if kind.is_dir() {
            // The root of a tree copied to "/" needs no entry of its own.
            if normalize(dest).is_ok() {
                self.directory(dest, mode)?;
            }
            let mut children: Vec<_> = std::fs::read_dir(source)
                .map_err(BuildError::io(format!("listing {}", source.display())))?
                .collect::<Result<_, _>>()
                .map_err(BuildError::io(format!("listing {}", source.display())))?;
            children.sort_by_key(|child| child.file_name());
            for child in children {
                let name = child.file_name();
                let Some(name) = name.to_str() else {
                    return Err(BuildError::invalid(&child.path(), "file name is not UTF-8"));
                };
                self.add_host_path(&child.path(), &format!("{dest}/{name}"))?;
            }
            Ok(())
        } else if kind.is_file() {
            self.file_path(dest, mode, source)
        } else if kind.is_symlink() {
            let target = std::fs::read_link(source)
                .map_err(BuildError::io(format!("reading link {}", source.display())))?;
            let Some(target) = target.to_str() else {
                return Err(BuildError::invalid(source, "link target is not UTF-8"));
            };
            self.symlink(dest, target)
        } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
            let type_bits = if kind.is_char_device() {
                S_IFCHR
            } else if kind.is_block_device() {
                S_IFBLK
            } else {
                S_IFIFO
            };
            let rdev = meta.rdev();
            self.insert(
                dest,
                Entry::Special {
                    kind: type_bits,
                    mode,
                    major: dev_major(rdev),
                    minor: dev_minor(rdev),
                },
            )
        } else {
            tracing::debug!(path = %source.display(), "skipping socket");
            Ok(())
        }
    }

    /// Adds every entry of a tar archive (plain, gzip, xz or zstd) under
    /// `/`. Hard links become copies; file contents are held in memory.
    pub fn add_tar(&mut self, path: &Path) -> Result<(), BuildError> {
        let reader = open_maybe_compressed(path)?;
        let mut archive = tar::Archive::new(reader);
        let context = format!("reading tar archive {}", path.display());
        for entry in archive.entries().map_err(BuildError::io(context.clone()))? {
            let mut entry = entry.map_err(BuildError::io(context.clone()))?;
            let name = {
                let raw = entry.path().map_err(BuildError::io(context.clone()))?;
                let Some(text) = raw.to_str() else {
                    return Err(BuildError::invalid(path, format!("non-UTF-8 name {raw:?}")));
                };
                text.to_owned()
            };
            let Ok(name) = normalize(&name) else {
                // "./" itself, or a name escaping the root: only the former is harmless.
                if name.trim_start_matches("./").trim_matches('/').is_empty() {
                    continue;
                }
                return Err(BuildError::invalid(path, format!("entry {name:?} leaves the root")));
            };
            let header = entry.header();
            let mode = header.mode().map_err(BuildError::io(context.clone()))? & 0o7777;
            let kind = header.entry_type();
            let target = match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => Some(entry_link(header, path)?),
                _ => None,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            match (kind, target) {
                (tar::EntryType::Directory, _) => self.directory(&name, mode)?,
                (tar::EntryType::Symlink, Some(target)) => self.symlink(&name, &target)?,
                (tar::EntryType::Link, Some(target)) => {
                    let target = normalize(&target)?;
                    match self.entries.get(&target) {
                        Some(entry @ Entry::File { .. }) => {
                            let entry = entry.clone();
                            self.insert(&name, entry)?;
                        }
                        _ => {
                            return Err(BuildError::invalid(
                                path,
                                format!(
                                    "hard link {name} to {target}, which is not an earlier file"
                                ),
                            ))
                        }
                    }
                }
                (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo, _) => {
                    let type_bits = match kind {
                        tar::EntryType::Char => S_IFCHR,
                        tar::EntryType::Block => S_IFBLK,
                        _ => S_IFIFO,
                    };
                    self.insert(&name, Entry::Special { kind: type_bits, mode, major, minor })?;
                }
                (tar::EntryType::Regular | tar::EntryType::Continuous, _) => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).map_err(BuildError::io(context.clone()))?;
                    self.file_bytes(&name, mode, data)?;
                }
                // PAX/GNU extension headers are consumed by the tar crate.
                (other, _) => tracing::debug!(?other, %name, "skipping tar entry"),
            }
        }
        Ok(())
    }

    /// Writes the tree as a newc archive.
    pub fn write_cpio<W: Write>(&self, out: W, mtime: u32) -> Result<W, BuildError> {
        let mut writer = CpioWriter::new(out, mtime);
        let err = |name: &str| BuildError::io(format!("writing {name} to the archive"));
        for (name, entry) in &self.entries {
            match entry {
                Entry::Directory { mode } => writer.directory(name, *mode).map_err(err(name))?,
                Entry::File { mode, content: Content::Bytes(data) } => {
                    writer.file(name, *mode, data).map_err(err(name))?
                }
                Entry::File { mode, content: Content::Path(source) } => {
                    let mut file = std::fs::File::open(source)
                        .map_err(BuildError::io(format!("opening {}", source.display())))?;
                    let size = file
                        .metadata()
                        .map_err(BuildError::io(format!("reading {}", source.display())))?
                        .len();
                    writer.file_from_reader(name, *mode, size, &mut file).map_err(err(name))?
                }
                Entry::Symlink { target } => writer.symlink(name, target).map_err(err(name))?,
                Entry::Special { kind, mode, major, minor } => {
                    writer.special(name, *kind, *mode, *major, *minor).map_err(err(name))?
                }
            }
        }
        writer.finish().map_err(err("the trailer"))
    }

    /// Writes the tree as a gzip-compressed newc archive.
    pub fn write_cpio_gz<W: Write>(&self, out: W, mtime: u32) -> Result<W, BuildError> {
        let encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
        let encoder = self.write_cpio(encoder, mtime)?;
        encoder.finish().map_err(BuildError::io("compressing the archive"))
    }
}

fn entry_link(header: &tar::Header, archive: &Path) -> Result<String, BuildError> {
    let target = header
        .link_name()
        .map_err(BuildError::io(format!("reading tar archive {}", archive.display())))?
        .ok_or_else(|| BuildError::invalid(archive, "link entry without a target"))?;
    target
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| BuildError::invalid(archive, format!("non-UTF-8 link target {target:?}")))
}

/// glibc's `major()`/`minor()` encoding of `st_rdev`.
fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

fn dev_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

/// Opens a file, transparently decompressing gzip, xz or zstd (sniffed
/// from the magic bytes).
pub fn open_maybe_compressed(path: &Path) -> Result<Box<dyn Read>, BuildError> {
    let context = format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(BuildError::io(context.clone()))?;
    let mut magic = [0u8; 6];
    let mut filled = 0;
    while filled < magic.len() {
        let read = file.read(&mut magic[filled..]).map_err(BuildError::io(context.clone()))?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let head = magic[..filled].to_vec();
    let chained = io::Cursor::new(head.clone()).chain(file);
    Ok(match Compression::sniff(&head) {
        Compression::None => Box::new(chained),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(chained)
                .map_err(|error| BuildError::invalid(path, format!("zstd: {error}")))?,
        ),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(chained, true)),
    })
}

/// Compression formats recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Decompresses a whole (small) file held in memory.
pub fn decompress(data: Vec<u8>, origin: &Path) -> Result<Vec<u8>, BuildError> {
    let mut out = Vec::new();
    match Compression::sniff(&data) {
        Compression::None => return Ok(data),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .map_err(|error| BuildError::invalid(origin, format!("gzip: {error}")))?;
        }
        Compression::Xz => {
            lzma_rust2::XzReader::new(&data[..], true)
                .read_to_end(&mut out)
                .map_err(|error| BuildError::invalid(origin, format!("xz: {error}")))?;
        }
        Compression::Zstd => {
            let mut decoder = ruzstd::decoding::StreamingDecoder::new(&data[..])
                .map_err(|error| BuildError::invalid(origin, format!("zstd: {error}")))?;
            decoder
                .read_to_end(&mut out)
                .map_err(|error| BuildError::invalid(origin, format!("zstd: {error}")))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() -> Result<(), Box<dyn std::error::Error>> {
        let mut writer = CpioWriter::new(Vec::new(), 0);
        writer.file("a", 0o644, b"hello")?;
        let out = writer.finish()?;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"));
        // 110-byte header + "a\0" = 112, then 5 data bytes padded to 8.
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..117], b"hello");
        assert_eq!(&out[117..120], &[0, 0, 0]);
        assert_eq!(&out[120..126], b"070701");
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
        Ok(())
    }

    #[test]
    fn tree_creates_parents_and_sorts() -> Result<(), BuildError> {
        let mut tree = Tree::new();
        tree.file_bytes("/lib/modules/x/a.ko", 0o644, vec![1])?;
        tree.directory("/dev", 0o755)?;
        let names: Vec<&str> = tree.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["dev", "lib", "lib/modules", "lib/modules/x", "lib/modules/x/a.ko"]);
        assert!(tree.file_bytes("lib/modules/x/a.ko/b", 0o644, vec![]).is_err());
        tree.file_bytes("lib/modules/x/b", 0o644, vec![])?;
        tree.file_bytes("lib/modules.dep", 0o644, vec![])?;
        tree.symlink("lib/modules", "/elsewhere")?;
        let names: Vec<&str> = tree.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["dev", "lib", "lib/modules", "lib/modules.dep"]);
        assert!(normalize("../etc").is_err());
        assert_eq!(normalize("./a//b/")?, "a/b");
        Ok(())
    }
}
