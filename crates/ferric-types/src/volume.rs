//! Boot-from-volume records (API 1.32): a node's volume connectors (how it
//! reaches storage: an iSCSI initiator name, an IP, a Fibre Channel WWN, ...)
//! and volume targets (the volumes it may boot from or attach).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{JsonObject, Timestamp};
use crate::validate::normalize_mac;

/// What a volume connector's `connector_id` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    /// An iSCSI qualified name (`iqn.2017-05.org.openstack:...`).
    Iqn,
    /// An IP address.
    Ip,
    /// A MAC address.
    Mac,
    /// A Fibre Channel world wide node name.
    Wwnn,
    /// A Fibre Channel world wide port name.
    Wwpn,
    /// A port of the node.
    Port,
    /// A portgroup of the node.
    Portgroup,
}

impl ConnectorType {
    pub const ALL: [ConnectorType; 7] =
        [Self::Iqn, Self::Ip, Self::Mac, Self::Wwnn, Self::Wwpn, Self::Port, Self::Portgroup];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iqn => "iqn",
            Self::Ip => "ip",
            Self::Mac => "mac",
            Self::Wwnn => "wwnn",
            Self::Wwpn => "wwpn",
            Self::Port => "port",
            Self::Portgroup => "portgroup",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Checks (and for MAC addresses normalises) a `connector_id` of this
    /// type; the error says what was expected.
    pub fn normalize_id(self, id: &str) -> Result<String, String> {
        if id.is_empty() {
            return Err("connector_id must not be empty".to_owned());
        }
        match self {
            Self::Mac => normalize_mac(id).ok_or_else(|| {
                format!("Expected a MAC address for connector_id but received {id}.")
            }),
            Self::Ip => id
                .parse::<IpAddr>()
                .map(|_| id.to_owned())
                .map_err(|_| format!("Expected an IP address for connector_id but received {id}.")),
            _ => Ok(id.to_owned()),
        }
    }
}

impl fmt::Display for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a node connects to storage. `(connector_type, connector_id)` is
/// unique across all nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeConnector {
    pub id: i64,
    pub uuid: Uuid,
    pub node_uuid: Uuid,
    pub connector_type: ConnectorType,
    pub connector_id: String,
    pub extra: JsonObject,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A volume a node may boot from (`boot_index` 0) or attach. `(node_uuid,
/// boot_index)` is unique.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeTarget {
    pub id: i64,
    pub uuid: Uuid,
    pub node_uuid: Uuid,
    /// `iscsi`, `fibre_channel`, ... (free text, as in Ironic).
    pub volume_type: String,
    /// Connection details; may hold CHAP secrets, so views mask them.
    pub properties: JsonObject,
    pub boot_index: i64,
    /// The volume's ID in the storage service.
    pub volume_id: String,
    pub extra: JsonObject,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_types_round_trip_and_check_ids() {
        for kind in ConnectorType::ALL {
            assert_eq!(ConnectorType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ConnectorType::parse("fc"), None);
        assert_eq!(
            ConnectorType::Mac.normalize_id("AA-BB-CC-DD-EE-FF").as_deref(),
            Ok("aa:bb:cc:dd:ee:ff")
        );
        assert!(ConnectorType::Mac.normalize_id("nope").is_err());
        assert!(ConnectorType::Ip.normalize_id("10.0.0.1").is_ok());
        assert!(ConnectorType::Ip.normalize_id("fe80::1").is_ok());
        assert!(ConnectorType::Ip.normalize_id("10.0.0.300").is_err());
        assert!(ConnectorType::Iqn.normalize_id("").is_err());
        assert_eq!(
            ConnectorType::Iqn.normalize_id("iqn.2017-05.org.openstack:01").as_deref(),
            Ok("iqn.2017-05.org.openstack:01")
        );
    }
}
