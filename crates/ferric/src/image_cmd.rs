//! `ferric image …`: build the deploy ramdisk and bootable whole-disk
//! images (`ferric-imagetools`), and manage the local content-addressed
//! image store (`--store`, default `DATA_DIR/images`). Output follows the
//! other commands (`-f table|json|yaml|value`, `-c COLUMN`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferric_cli::output::{Column, Format, Printer};
use ferric_imagetools::disk::{self, DiskFormat, DiskSpec, Firmware, RootSource};
use ferric_imagetools::ramdisk::{self, RamdiskSpec};
use ferric_imagetools::store::{ImageRecord, ImageStore};
use serde_json::Value;

#[derive(Args)]
pub struct ImageArgs {
    /// Image store directory [default: DATA_DIR/images, DATA_DIR from
    /// FERRIC_DATA_DIR or $XDG_DATA_HOME/ferric or ./ferric-data].
    #[arg(long, global = true, env = "FERRIC_IMAGE_STORE")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the deploy ramdisk: ferric-deploy.kernel and ferric-deploy.initramfs.
    BuildRamdisk(BuildRamdiskArgs),
    /// Build a bootable (BIOS and UEFI) whole-disk image, without root.
    BuildDisk(BuildDiskArgs),
    /// Import an image into the store from a file or an HTTP(S) URL.
    Create(CreateArgs),
    /// List the images in the store.
    List,
    /// Show one image (by id, name or SHA-256 prefix).
    Show { image: String },
    /// Delete an image (by id or name); its content goes when no other image shares it.
    Delete { image: String },
}

#[derive(Args)]
struct BuildRamdiskArgs {
    /// Kernel image [default: the newest /boot/vmlinuz-*].
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The kernel's modules directory [default: /lib/modules/<kernel version>].
    #[arg(long)]
    modules_dir: Option<PathBuf>,
    /// A kernel module (or alias) to add to the default set; repeatable.
    #[arg(long = "module", value_name = "MODULE")]
    modules: Vec<String>,
    /// Leave out the default module set (only --module modules).
    #[arg(long)]
    no_default_modules: bool,
    /// The static ferric-agent binary [default: ferric-agent next to this binary].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// An extra file or directory, SRC:DEST (DEST inside the ramdisk); repeatable.
    #[arg(long = "extra", value_name = "SRC:DEST")]
    extra: Vec<String>,
    /// Where to write the kernel and initramfs.
    #[arg(long)]
    output_dir: PathBuf,
}

#[derive(Args)]
struct BuildDiskArgs {
    /// The image file to write (replaced atomically).
    #[arg(long)]
    output: PathBuf,
    /// Disk size in MiB [default: the contents plus headroom, at least 64].
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    size_mib: u64,
    /// Kernel image [default: the newest /boot/vmlinuz-*].
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// An initramfs to boot.
    #[arg(long, conflicts_with = "root")]
    initrd: Option<PathBuf>,
    /// A root directory or tarball (.tar[.gz|.xz|.zst]) packed as the
    /// initramfs; it must have /init.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = disk::DEFAULT_CMDLINE)]
    cmdline: String,
    /// Boot with UEFI only (no syslinux BIOS loader).
    #[arg(long, conflicts_with = "bios_only")]
    uefi_only: bool,
    /// Boot with BIOS only (no EFI loader).
    #[arg(long)]
    bios_only: bool,
    /// Image format (`-f`/`--format` selects the output format) [default:
    /// qcow2 when the output ends in .qcow2, else raw].
    #[arg(long, value_parser = ["raw", "qcow2"])]
    disk_format: Option<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
struct CreateArgs {
    /// A local image file.
    #[arg(long, group = "source")]
    file: Option<PathBuf>,
    /// An HTTP(S) URL to download.
    #[arg(long, group = "source")]
    url: Option<String>,
    /// A unique name.
    #[arg(long)]
    name: Option<String>,
}

/// Runs one `ferric image` command and prints its output.
pub fn run(options: &ferric_cli::GlobalOptions, args: ImageArgs) -> anyhow::Result<()> {
    let printer = Printer { format: options.format, columns: options.columns.clone() };
    let output = match args.command {
        ImageCommand::BuildRamdisk(build) => build_ramdisk(&printer, build)?,
        ImageCommand::BuildDisk(build) => build_disk(&printer, build)?,
        ImageCommand::Create(create) => {
            let store = open_store(args.store)?;
            let record = match (create.file, create.url) {
                (Some(file), _) => store
                    .create_from_file(&file, create.name)
                    .with_context(|| format!("importing {}", file.display()))?,
                (None, Some(url)) => {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime
                        .block_on(store.create_from_url(&url, create.name))
                        .context("importing from a URL")?
                }
                (None, None) => anyhow::bail!("give --file or --url"),
            };
            show(&printer, &store, &record)?
        }
        ImageCommand::List => {
            let store = open_store(args.store)?;
            let rows: Vec<Value> = store.list()?.iter().map(record_value).collect();
            let columns = [
                Column { field: "id".into(), heading: "ID".into() },
                Column::new("name"),
                Column::new("format"),
                Column::new("size"),
                Column::new("virtual_size"),
                Column::new("created_at"),
            ];
            printer.list(&columns, &rows).map_err(anyhow::Error::msg)?
        }
        ImageCommand::Show { image } => {
            let store = open_store(args.store)?;
            let record = store.get(&image)?;
            show(&printer, &store, &record)?
        }
        ImageCommand::Delete { image } => {
            let store = open_store(args.store)?;
            let record = store.delete(&image)?;
            match &record.name {
                Some(name) => format!("Deleted image {} ({name})\n", record.id),
                None => format!("Deleted image {}\n", record.id),
            }
        }
    };
    print!("{output}");
    Ok(())
}

fn open_store(flag: Option<PathBuf>) -> anyhow::Result<ImageStore> {
    let root = flag.unwrap_or_else(|| {
        let data_dir = std::env::var_os("FERRIC_DATA_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(crate::config::default_data_dir);
        data_dir.join("images")
    });
    ImageStore::open(&root).with_context(|| format!("opening the image store {}", root.display()))
}

fn record_value(record: &ImageRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

fn show(printer: &Printer, store: &ImageStore, record: &ImageRecord) -> anyhow::Result<String> {
    let mut value = record_value(record);
    if let Value::Object(map) = &mut value {
        map.insert("path".into(), Value::String(store.path(record).display().to_string()));
    }
    printer.show(&value).map_err(anyhow::Error::msg)
}

fn build_ramdisk(printer: &Printer, args: BuildRamdiskArgs) -> anyhow::Result<String> {
    let kernel = match args.kernel {
        Some(kernel) => kernel,
        None => ramdisk::default_kernel()?,
    };
    let agent = match args.agent {
        Some(agent) => agent,
        None => {
            let sibling = std::env::current_exe()
                .context("locating this binary")?
                .with_file_name("ferric-agent");
            anyhow::ensure!(
                sibling.is_file(),
                "no agent: give --agent PATH (the static ferric-agent binary); \
                 {} does not exist",
                sibling.display()
            );
            sibling
        }
    };
    let mut spec = RamdiskSpec::for_kernel(kernel, agent, args.output_dir)?;
    if let Some(dir) = args.modules_dir {
        spec.modules_dir = dir;
    }
    if args.no_default_modules {
        spec.modules.clear();
    }
    for module in args.modules {
        if !spec.modules.contains(&module) {
            spec.modules.push(module);
        }
    }
    for extra in args.extra {
        let (source, dest) = extra
            .split_once(':')
            .with_context(|| format!("--extra {extra:?}: expected SRC:DEST"))?;
        spec.extra.push((PathBuf::from(source), dest.to_owned()));
    }
    let report = ramdisk::build_ramdisk(&spec).context("building the ramdisk")?;
    let mut value = serde_json::to_value(&report)?;
    if let (Value::Object(map), Format::Table | Format::Value) = (&mut value, printer.format) {
        // One module per line in a table cell.
        map.insert("modules".into(), Value::String(report.modules.join("\n")));
        map.insert("builtin".into(), Value::String(report.builtin.join(" ")));
    }
    printer.show(&value).map_err(anyhow::Error::msg)
}

fn build_disk(printer: &Printer, args: BuildDiskArgs) -> anyhow::Result<String> {
    let kernel = match args.kernel {
        Some(kernel) => kernel,
        None => ramdisk::default_kernel()?,
    };
    let mut spec = DiskSpec::new(args.output, kernel);
    spec.size_mib = args.size_mib;
    spec.initrd = args.initrd;
    spec.root = match args.root {
        Some(root) if root.is_dir() => Some(RootSource::Dir(root)),
        Some(root) => Some(RootSource::Tar(root)),
        None => None,
    };
    spec.cmdline = args.cmdline;
    spec.firmware = if args.uefi_only {
        Firmware::Uefi
    } else if args.bios_only {
        Firmware::Bios
    } else {
        Firmware::Both
    };
    spec.format = match args.disk_format.as_deref() {
        Some("qcow2") => DiskFormat::Qcow2,
        Some(_) => DiskFormat::Raw,
        None if spec.output.extension().is_some_and(|ext| ext == "qcow2") => DiskFormat::Qcow2,
        None => DiskFormat::Raw,
    };
    let report = disk::build_whole_disk(&spec).context("building the disk image")?;
    printer.show(&serde_json::to_value(&report)?).map_err(anyhow::Error::msg)
}
