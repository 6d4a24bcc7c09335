//! Where served files come from: the [`FileSource`] trait, a filesystem
//! implementation confined to a root directory ([`FsSource`]) and an
//! in-memory one for generated content and tests ([`MemorySource`]).
//!
//! Path safety lives here. A requested name is split on `/`; empty and `.`
//! parts are dropped and any `..` part is refused outright (even one that
//! would stay inside the root), as tftpd-hpa does. On the filesystem the
//! resulting path is resolved with symlinks followed and must still lie
//! inside the root, so a symlink pointing outside is refused too.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::packet::{ErrorCode, Packet};

/// An opened file: its bytes and, when known, its size.
pub struct OpenedFile {
    /// Reads the file from the start.
    pub reader: Box<dyn Read + Send>,
    /// Exact size in bytes, if known (reported through `tsize`).
    pub size: Option<u64>,
}

impl OpenedFile {
    /// A file served from memory.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        let size = u64::try_from(bytes.len()).ok();
        OpenedFile { reader: Box::new(Cursor::new(SharedBytes(bytes))), size }
    }
}

impl std::fmt::Debug for OpenedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedFile").field("size", &self.size).finish_non_exhaustive()
    }
}

struct SharedBytes(Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// The name leaves the root, or the file may not be read.
    #[error("access violation: {0}")]
    AccessViolation(&'static str),
    /// Any other I/O failure.
    #[error("cannot open file: {0}")]
    Io(#[from] io::Error),
}

impl SourceError {
    /// The error packet to answer the request with. I/O details stay in the
    /// server's log rather than going to the client.
    pub fn to_packet(&self) -> Packet {
        match self {
            SourceError::NotFound => Packet::error(ErrorCode::FILE_NOT_FOUND, "File not found"),
            SourceError::AccessViolation(_) => {
                Packet::error(ErrorCode::ACCESS_VIOLATION, "Access violation")
            }
            SourceError::Io(_) => Packet::error(ErrorCode::NOT_DEFINED, "Cannot read file"),
        }
    }
}

/// Opens files by the name a client asked for.
pub trait FileSource: Send + Sync {
    /// Opens `path` (as sent by the client) for reading.
    fn open(&self, path: &str) -> Result<OpenedFile, SourceError>;
}

/// Splits a requested name into its path components relative to the root:
/// leading, repeated and trailing `/` and `.` components are dropped; `..`
/// is refused. An empty result names the root itself, which is not a file.
pub fn relative_components(path: &str) -> Result<Vec<&str>, SourceError> {
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(SourceError::AccessViolation("path contains '..'")),
            name => components.push(name),
        }
    }
    if components.is_empty() {
        return Err(SourceError::NotFound);
    }
    Ok(components)
}

/// What [`FsSource`] does with a name starting with `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AbsolutePaths {
    /// Serve it only if it lies under the root (as the root was given or
    /// after resolving symlinks), with that prefix removed — Ironic writes
    /// boot configurations naming `/tftpboot/<node>/kernel`. Anything else
    /// is an access violation.
    #[default]
    UnderRootOnly,
    /// Like [`AbsolutePaths::UnderRootOnly`], but any other absolute name is
    /// taken relative to the root, as tftpd-hpa's `--secure` (chroot) does.
    RelativeToRoot,
}

/// Serves files from a directory tree, never outside it.
#[derive(Debug, Clone)]
pub struct FsSource {
    /// The root as given, made absolute (what clients may prefix names with).
    given_root: PathBuf,
    /// The root with symlinks resolved (what opened files must lie under).
    canonical_root: PathBuf,
    absolute_paths: AbsolutePaths,
}

impl FsSource {
    /// A source rooted at `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        let canonical_root = root.canonicalize()?;
        if !canonical_root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("TFTP root {} is not a directory", root.display()),
            ));
        }
        let given_root =
            if root.is_absolute() { lexically_normal(root) } else { canonical_root.clone() };
        Ok(FsSource { given_root, canonical_root, absolute_paths: AbsolutePaths::default() })
    }

    /// Chooses how names starting with `/` are treated.
    pub fn with_absolute_paths(mut self, policy: AbsolutePaths) -> Self {
        self.absolute_paths = policy;
        self
    }

    /// The directory served (symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.canonical_root
    }

    /// The path a requested name maps to, before symlinks are resolved.
    fn candidate(&self, requested: &str) -> Result<PathBuf, SourceError> {
        let components = relative_components(requested)?;
        let relative: Vec<&str> = if requested.starts_with('/') {
            match self
                .strip_root(&components, &self.given_root)
                .or_else(|| self.strip_root(&components, &self.canonical_root))
            {
                Some(inside) => inside,
                None if self.absolute_paths == AbsolutePaths::RelativeToRoot => components,
                None => return Err(SourceError::AccessViolation("absolute path outside the root")),
            }
        } else {
            components
        };
        if relative.is_empty() {
            return Err(SourceError::NotFound);
        }
        let mut path = self.canonical_root.clone();
        path.extend(relative);
        Ok(path)
    }

    /// The components after `root`'s, if `components` start with them.
    fn strip_root<'a>(&self, components: &[&'a str], root: &Path) -> Option<Vec<&'a str>> {
        let root_components: Vec<&str> = root
            .components()
            .filter_map(|component| match component {
                Component::Normal(name) => name.to_str(),
                _ => None,
            })
            .collect();
        let inside_root = components.len() >= root_components.len()
            && components.iter().zip(&root_components).all(|(a, b)| a == b);
        inside_root.then(|| components[root_components.len()..].to_vec())
    }
}

impl FileSource for FsSource {
    fn open(&self, requested: &str) -> Result<OpenedFile, SourceError> {
        let candidate = self.candidate(requested)?;
        let resolved = candidate.canonicalize().map_err(map_open_error)?;
        if !resolved.starts_with(&self.canonical_root) {
            return Err(SourceError::AccessViolation("symlink leads outside the root"));
        }
        let file = File::open(&resolved).map_err(map_open_error)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(SourceError::AccessViolation("not a regular file"));
        }
        Ok(OpenedFile {
            reader: Box::new(BufReader::with_capacity(64 * 1024, file)),
            size: Some(metadata.len()),
        })
    }
}

fn map_open_error(error: io::Error) -> SourceError {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => SourceError::NotFound,
        io::ErrorKind::PermissionDenied => SourceError::AccessViolation("permission denied"),
        _ => SourceError::Io(error),
    }
}

/// `.` removed and `..` applied without touching the filesystem.
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Files held in memory under their normalised relative names — for
/// generated content (boot scripts rendered per node) and for tests.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: HashMap<String, Arc<[u8]>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        MemorySource::default()
    }

    /// Adds or replaces a file. The name is normalised like a request, so
    /// `/a//b` and `a/b` are the same file.
    pub fn insert(&mut self, name: &str, bytes: impl Into<Arc<[u8]>>) -> Result<(), SourceError> {
        let key = relative_components(name)?.join("/");
        self.files.insert(key, bytes.into());
        Ok(())
    }
}

impl FileSource for MemorySource {
    fn open(&self, requested: &str) -> Result<OpenedFile, SourceError> {
        let key = relative_components(requested)?.join("/");
        self.files
            .get(&key)
            .map(|bytes| OpenedFile::from_bytes(Arc::clone(bytes)))
            .ok_or(SourceError::NotFound)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(mut opened: OpenedFile) -> Vec<u8> {
        let mut bytes = Vec::new();
        opened.reader.read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn tree() -> (tempfile::TempDir, FsSource) {
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("boot.ipxe"), b"#!ipxe\n").unwrap();
        std::fs::write(root.join("sub/kernel"), b"kernel bytes").unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("sub/kernel", root.join("alias")).unwrap();
        let source = FsSource::new(&root).unwrap();
        (outside, source)
    }

    fn is_access_violation(result: Result<OpenedFile, SourceError>) -> bool {
        matches!(result, Err(SourceError::AccessViolation(_)))
    }

    #[test]
    fn relative_components_normalise_and_refuse_dot_dot() {
        assert_eq!(relative_components("/a//./b/").unwrap(), vec!["a", "b"]);
        assert!(matches!(relative_components("a/../b"), Err(SourceError::AccessViolation(_))));
        assert!(matches!(relative_components("/"), Err(SourceError::NotFound)));
        assert!(matches!(relative_components(""), Err(SourceError::NotFound)));
    }

    #[test]
    fn serves_files_and_their_sizes_inside_the_root() {
        let (_dir, source) = tree();
        let opened = source.open("sub/kernel").unwrap();
        assert_eq!(opened.size, Some(12));
        assert_eq!(read_all(opened), b"kernel bytes");
        assert_eq!(read_all(source.open("./sub//kernel").unwrap()), b"kernel bytes");
        assert_eq!(read_all(source.open("alias").unwrap()), b"kernel bytes");
    }

    #[test]
    fn refuses_traversal_absolute_paths_outside_and_escaping_symlinks() {
        let (dir, source) = tree();
        assert!(is_access_violation(source.open("../secret")));
        assert!(is_access_violation(source.open("sub/../../secret")));
        assert!(is_access_violation(source.open("../etc/passwd")));
        assert!(is_access_violation(source.open("/etc/passwd")));
        assert!(is_access_violation(source.open(&dir.path().join("secret").display().to_string())));
        assert!(is_access_violation(source.open("escape")));
        assert!(is_access_violation(source.open("etc/passwd")));
        assert!(is_access_violation(source.open("sub")));
    }

    #[test]
    fn absolute_paths_under_the_root_are_served() {
        let (dir, source) = tree();
        let absolute = dir.path().join("root/sub/kernel");
        assert_eq!(
            read_all(source.open(&absolute.display().to_string()).unwrap()),
            b"kernel bytes"
        );
    }

    #[test]
    fn absolute_paths_can_be_taken_relative_to_the_root() {
        let (_dir, source) = tree();
        let source = source.with_absolute_paths(AbsolutePaths::RelativeToRoot);
        assert_eq!(read_all(source.open("/boot.ipxe").unwrap()), b"#!ipxe\n");
        assert!(matches!(source.open("/etc/passwd"), Err(SourceError::AccessViolation(_))));
        assert!(matches!(source.open("/missing"), Err(SourceError::NotFound)));
    }

    #[test]
    fn missing_files_are_not_found() {
        let (_dir, source) = tree();
        assert!(matches!(source.open("missing"), Err(SourceError::NotFound)));
        assert!(matches!(source.open("boot.ipxe/x"), Err(SourceError::NotFound)));
    }

    #[test]
    fn error_packets_carry_the_rfc_codes() {
        assert_eq!(
            SourceError::NotFound.to_packet(),
            Packet::error(ErrorCode::FILE_NOT_FOUND, "File not found")
        );
        assert_eq!(
            SourceError::AccessViolation("x").to_packet(),
            Packet::error(ErrorCode::ACCESS_VIOLATION, "Access violation")
        );
    }

    #[test]
    fn memory_source_serves_normalised_names() {
        let mut source = MemorySource::new();
        source.insert("/nodes//a/boot.ipxe", b"script".to_vec()).unwrap();
        let opened = source.open("nodes/a/boot.ipxe").unwrap();
        assert_eq!(opened.size, Some(6));
        assert_eq!(read_all(opened), b"script");
        assert!(matches!(source.open("nodes/b"), Err(SourceError::NotFound)));
        assert!(matches!(
            source.open("../nodes/a/boot.ipxe"),
            Err(SourceError::AccessViolation(_))
        ));
    }
}
