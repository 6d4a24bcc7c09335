//! Image tooling for operators: the deploy ramdisk (kernel + initramfs with
//! the agent and the kernel modules it needs), bootable whole-disk images,
//! and the content-addressed image store served to agents.
//!
//! - [`cpio`]: a newc cpio writer and an in-memory tree of initramfs entries.
//! - [`kmod`]: `modules.dep`/`modules.builtin`/`modules.alias` parsing and
//!   dependency ordering.
//! - [`ramdisk`]: `build_ramdisk` (`ferric image build-ramdisk`).
//! - [`disk`]: `build_whole_disk` (`ferric image build-disk`), BIOS + UEFI,
//!   no root, loop devices or mounts.
//! - [`store`]: [`ImageStore`], images by SHA-256 with JSON metadata.

pub mod cpio;
pub mod disk;
pub mod kmod;
pub mod ramdisk;
pub mod store;

use std::path::{Path, PathBuf};

pub use disk::{build_whole_disk, DiskFormat, DiskReport, DiskSpec, Firmware, RootSource};
pub use ramdisk::{build_ramdisk, RamdiskReport, RamdiskSpec};
pub use store::{ImageRecord, ImageStore, StoreError};

/// Why building a ramdisk or disk image failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// (The cause is in the message, not chained, so `{:#}` shows it once.)
    #[error("{context}: {cause}")]
    Io { context: String, cause: std::io::Error },
    #[error("no kernel found: {0}")]
    NoKernel(String),
    #[error("unknown kernel module {0:?} (not in modules.dep, modules.builtin or modules.alias)")]
    UnknownModule(String),
    #[error("kernel module dependency cycle: {0}")]
    DependencyCycle(String),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{tool} failed ({status}): {stderr}")]
    Tool { tool: String, status: String, stderr: String },
    #[error("cannot run {tool}: {cause} (is it installed?)")]
    ToolMissing { tool: String, cause: std::io::Error },
    #[error("invalid input: {0}")]
    Input(String),
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let context = context.into();
        move |cause| BuildError::Io { context, cause }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> BuildError {
        BuildError::Invalid { path: path.to_owned(), message: message.into() }
    }
}

/// Runs a tool, failing with its stderr when it exits non-zero.
pub(crate) fn run_tool(command: &mut std::process::Command) -> Result<String, BuildError> {
    let tool = command.get_program().to_string_lossy().into_owned();
    tracing::debug!(?command, "running");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|cause| BuildError::ToolMissing { tool: tool.clone(), cause })?;
    if !output.status.success() {
        let args: Vec<String> =
            command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        return Err(BuildError::Tool {
            tool: format!("{tool} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
