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

impl FirmwareComponent {
    /// The rows to store when the BMC reports `reported` (component, current
    /// version) and `known` are stored, as Ironic syncs them: a new
    /// component starts with its initial and current version; a known one
    /// whose version changed takes it as current and last flashed version
    /// (keeping its initial version). Unchanged components are left out.
    pub fn sync(
        node_uuid: Uuid,
        known: &[FirmwareComponent],
        reported: &[(String, String)],
    ) -> Vec<FirmwareComponent> {
        let mut changed = Vec::new();
        for (component, version) in reported {
            match known.iter().find(|row| row.component == *component) {
                None => changed.push(FirmwareComponent {
                    node_uuid,
                    component: component.clone(),
                    initial_version: version.clone(),
                    current_version: Some(version.clone()),
                    ..FirmwareComponent::default()
                }),
                Some(row) if row.current_version.as_deref() != Some(version.as_str()) => changed
                    .push(FirmwareComponent {
                        current_version: Some(version.clone()),
                        last_version_flashed: Some(version.clone()),
                        created_at: None,
                        updated_at: None,
                        ..row.clone()
                    }),
                Some(_) => {}
            }
        }
        changed
    }
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

/// One virtual media slot of a BMC as `GET /v1/nodes/{node}/vmedia`
/// reports it (Redfish's names: media types such as `CD`, `DVD`, `Floppy`,
/// `USBStick`; `image` empty when nothing is inserted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualMediaSlot {
    pub media_types: Vec<String>,
    pub inserted: bool,
    pub image: String,
}

impl VmediaDevice {
    /// The Redfish media types of the slot Ironic uses for this device
    /// (`cdrom` also takes DVDs, `disk` is a USB stick).
    pub fn redfish_media_types(self) -> &'static [&'static str] {
        match self {
            Self::Cdrom => &["CD", "DVD"],
            Self::Disk => &["USBStick"],
            Self::Floppy => &["Floppy"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_sync_keeps_the_initial_version() {
        let node = Uuid::new_v4();
        let first = FirmwareComponent::sync(node, &[], &[("bios".into(), "1.0".into())]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].initial_version, "1.0");
        assert_eq!(first[0].current_version.as_deref(), Some("1.0"));
        assert_eq!(first[0].last_version_flashed, None);
        assert!(FirmwareComponent::sync(node, &first, &[("bios".into(), "1.0".into())]).is_empty());
        let flashed = FirmwareComponent::sync(node, &first, &[("bios".into(), "2.0".into())]);
        assert_eq!(flashed[0].initial_version, "1.0");
        assert_eq!(flashed[0].current_version.as_deref(), Some("2.0"));
        assert_eq!(flashed[0].last_version_flashed.as_deref(), Some("2.0"));
    }

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
