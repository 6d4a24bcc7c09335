//! The network-boot interfaces: `ipxe`, `pxe` and `http` (UEFI HTTP boot).
//!
//! ferric renders a node's boot script from its state on every request
//! (`ferric-httpboot`), so there are no per-node files to write or clean
//! up: preparing a boot only means choosing the boot device, which the
//! conductor sets through the management interface
//! ([`BootInterface::ramdisk_boot_device`]). What these interfaces check is
//! that the node has the ramdisk images it will need.

use ferric_types::{BootDevice, InterfaceKind, Node};
use serde_json::Value;

use crate::error::DriverError;
use crate::interfaces::{BootInterface, Interface};

/// How the firmware reaches ferric's boot services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetBoot {
    /// iPXE over the network (firmware PXE chain-loads iPXE, then HTTP).
    Ipxe,
    /// Firmware PXE (ferric hands out iPXE over TFTP, then as `Ipxe`).
    Pxe,
    /// UEFI HTTP boot.
    Http,
}

fn has_text(node: &Node, key: &str) -> bool {
    node.driver_info.get(key).and_then(Value::as_str).is_some_and(|text| !text.trim().is_empty())
}

#[async_trait::async_trait]
impl Interface for NetBoot {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Boot
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        let missing: Vec<String> = ["deploy_kernel", "deploy_ramdisk"]
            .into_iter()
            .filter(|key| !has_text(node, key))
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(DriverError::MissingInfo { keys: missing })
        }
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "deploy_kernel",
                "Kernel of the deploy ramdisk: a URL, or a path under the boot root. Required.",
            ),
            (
                "deploy_ramdisk",
                "Initramfs of the deploy ramdisk: a URL, or a path under the boot root. Required.",
            ),
            ("rescue_kernel", "Kernel booted for rescue. Optional."),
            ("rescue_ramdisk", "Initramfs booted for rescue. Optional."),
            ("kernel_append_params", "Extra kernel command line for the ramdisk. Optional."),
        ]
    }
}

#[async_trait::async_trait]
impl BootInterface for NetBoot {
    fn ramdisk_boot_device(&self) -> BootDevice {
        match self {
            NetBoot::Ipxe | NetBoot::Pxe => BootDevice::Pxe,
            NetBoot::Http => BootDevice::Uefihttp,
        }
    }

    async fn prepare_ramdisk(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }

    async fn clean_up_ramdisk(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }

    async fn prepare_instance(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }

    async fn clean_up_instance(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_types::{HardwareType, ProvisionState};

    #[test]
    fn the_deploy_images_are_required() {
        let mut node = Node::new(uuid::Uuid::new_v4(), HardwareType::Ipmi, ProvisionState::Enroll);
        let error = NetBoot::Ipxe.validate(&node).expect_err("missing images");
        assert_eq!(
            error.to_string(),
            "some parameters were missing in node's driver_info. Missing are: deploy_kernel, deploy_ramdisk"
        );
        node.driver_info.insert("deploy_kernel".into(), "agent/vmlinuz".into());
        node.driver_info.insert("deploy_ramdisk".into(), "agent/initrd".into());
        assert!(NetBoot::Ipxe.validate(&node).is_ok());
        assert_eq!(NetBoot::Http.ramdisk_boot_device(), BootDevice::Uefihttp);
    }
}
