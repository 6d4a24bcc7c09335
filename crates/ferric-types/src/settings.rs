//! What a node's BMC reports about its firmware: BIOS settings (API 1.40,
//! registry fields 1.74), firmware components (1.86), and the virtual media
//! devices images can be attached to (1.89).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::Timestamp;

/// One BIOS setting of a node, with its registry entry when the BMC
/// publishes one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BiosSetting {
    pub node_uuid: Uuid,
    pub name: String,
    pub value: Option<String>,
    pub attribute_type: Option<String>,
    pub allowable_values: Option<Vec<String>>,
    pub lower_bound: Option<i64>,
    pub upper_bound: Option<i64>,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub read_only: Option<bool>,
    pub reset_required: Option<bool>,
    pub unique: Option<bool>,
    /// Set by the store.
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

impl BiosSetting {
    /// A plain `name = value` setting without registry information.
    pub fn new(node_uuid: Uuid, name: &str, value: &str) -> Self {
        Self { node_uuid, name: name.to_owned(), value: Some(value.to_owned()), ..Self::default() }
    }
}

/// One firmware component of a node (BIOS, BMC, NIC, ...).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirmwareComponent {
    pub node_uuid: Uuid,
    pub component: String,
    pub initial_version: String,
    pub current_version: Option<String>,
    pub last_version_flashed: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    /// Set by the store.
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// A device an image can be attached to as virtual media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmediaDevice {
    Cdrom,
    Disk,
    Floppy,
}

impl VmediaDevice {
    pub const ALL: [VmediaDevice; 3] = [Self::Disk, Self::Cdrom, Self::Floppy];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cdrom => "cdrom",
            Self::Disk => "disk",
            Self::Floppy => "floppy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|device| device.as_str() == text)
    }
}

impl fmt::Display for VmediaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the BMC gets a virtual media image: from the given URL (`http`),
/// through the conductor's own web server (`local`), or from Swift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDownloadSource {
    Http,
    Local,
    Swift,
}

impl ImageDownloadSource {
    pub const ALL: [ImageDownloadSource; 3] = [Self::Http, Self::Local, Self::Swift];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Local => "local",
            Self::Swift => "swift",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|source| source.as_str() == text)
    }
}

/// An image to attach as virtual media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualMedia {
    pub device_type: VmediaDevice,
    pub image_url: String,
    pub image_download_source: ImageDownloadSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for device in VmediaDevice::ALL {
            assert_eq!(VmediaDevice::parse(device.as_str()), Some(device));
        }
        for source in ImageDownloadSource::ALL {
            assert_eq!(ImageDownloadSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(VmediaDevice::parse("usb"), None);
    }
}
