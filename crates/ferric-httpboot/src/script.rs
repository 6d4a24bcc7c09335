//! iPXE scripts from node state. Pure functions: the same node and settings
//! always give the same script.

use ferric_types::{JsonObject, Node, ProvisionState};

/// Where the ramdisk finds ferric, and where boot files live.
#[derive(Debug, Clone)]
pub struct BootSettings {
    /// The API base URL the agent calls (`http://198.18.0.1:6385`).
    pub api_url: String,
    /// Base URL of the file server (`http://198.18.0.1:8080`); relative
    /// `deploy_kernel`/`deploy_ramdisk` values are resolved under `/files/`.
    pub file_base_url: String,
    /// Appended to every ramdisk kernel command line (e.g. `console=ttyS0`).
    pub kernel_append: String,
}

/// What the script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootAction {
    /// Boot the deploy (or rescue) kernel and ramdisk.
    Ramdisk { kernel: String, ramdisk: String, cmdline: String },
    /// Boot from the first local disk.
    LocalDisk,
    /// Nothing to do: fall back to the firmware's next boot option.
    Exit,
    /// The node should boot a ramdisk but lacks the images: say so on the
    /// console, then give up.
    Misconfigured(String),
}

fn resolve(reference: &str, settings: &BootSettings) -> String {
    if reference.contains("://") {
        reference.to_owned()
    } else {
        format!(
            "{}/files/{}",
            settings.file_base_url.trim_end_matches('/'),
            reference.trim_start_matches('/')
        )
    }
}

/// Decides what `node` (booting from the NIC with `mac`) should boot.
pub fn decide(node: &Node, mac: &str, settings: &BootSettings) -> BootAction {
    let state = node.provision_state;
    if state == ProvisionState::Active {
        return BootAction::LocalDisk;
    }
    if !state.runs_ramdisk() {
        return BootAction::Exit;
    }
    let rescue = matches!(state, ProvisionState::Rescuing | ProvisionState::RescueWait);
    let (kernel_key, ramdisk_key) = if rescue {
        ("rescue_kernel", "rescue_ramdisk")
    } else {
        ("deploy_kernel", "deploy_ramdisk")
    };
    let kernel = text_value(&node.driver_info, kernel_key);
    let ramdisk = text_value(&node.driver_info, ramdisk_key);
    let (Some(kernel), Some(ramdisk)) = (kernel, ramdisk) else {
        return BootAction::Misconfigured(format!(
            "node {} has no {kernel_key}/{ramdisk_key} in driver_info",
            node.uuid
        ));
    };
    let api = settings.api_url.trim_end_matches('/');
    let mut cmdline = format!(
        "ipa-api-url={api} ferric.api_url={api} ferric.node={} BOOTIF=01-{}",
        node.uuid,
        mac.replace(':', "-")
    );
    if matches!(state, ProvisionState::Inspecting | ProvisionState::InspectWait) {
        cmdline.push_str(&format!(" ipa-inspection-callback-url={api}/v1/continue_inspection"));
    }
    for extra in [
        settings.kernel_append.as_str(),
        text_value(&node.driver_info, "kernel_append_params").unwrap_or(""),
    ] {
        if !extra.trim().is_empty() {
            cmdline.push(' ');
            cmdline.push_str(extra.trim());
        }
    }
    BootAction::Ramdisk {
        kernel: resolve(kernel, settings),
        ramdisk: resolve(ramdisk, settings),
        cmdline,
    }
}

/// The iPXE script for `node`.
pub fn render(node: &Node, mac: &str, settings: &BootSettings) -> String {
    let mut script = String::from("#!ipxe\n");
    match decide(node, mac, settings) {
        BootAction::Ramdisk { kernel, ramdisk, cmdline } => {
            script.push_str(&format!(
                "echo ferric: booting the ramdisk of node {} ({})\n",
                node.uuid, node.provision_state
            ));
            script.push_str(&format!("kernel {kernel} initrd=ramdisk {cmdline}\n"));
            script.push_str(&format!("initrd --name ramdisk {ramdisk}\n"));
            script.push_str("boot\n");
        }
        BootAction::LocalDisk => {
            script.push_str(&format!("echo ferric: node {} boots from its disk\n", node.uuid));
            // UEFI: leave iPXE so the firmware tries its next boot entry;
            // BIOS: hand over to the first disk.
            script.push_str("iseq ${platform} efi && exit ||\n");
            script.push_str("sanboot --no-describe --drive 0x80 || exit\n");
        }
        BootAction::Exit => {
            script.push_str(&format!(
                "echo ferric: node {} is {}: nothing to boot over the network\nexit\n",
                node.uuid, node.provision_state
            ));
        }
        BootAction::Misconfigured(reason) => {
            script.push_str(&format!("echo ferric: cannot boot: {reason}\nsleep 10\nexit 1\n"));
        }
    }
    script
}

/// A non-blank string value of a `driver_info`-style object.
fn text_value<'a>(object: &'a JsonObject, key: &str) -> Option<&'a str> {
    object.get(key).and_then(|value| value.as_str()).filter(|text| !text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_types::HardwareType;

    fn settings() -> BootSettings {
        BootSettings {
            api_url: "http://198.18.0.1:6385".into(),
            file_base_url: "http://198.18.0.1:8080/".into(),
            kernel_append: "console=ttyS0".into(),
        }
    }

    fn node(state: ProvisionState) -> Node {
        let uuid = uuid::Uuid::parse_str("6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11").expect("uuid");
        let mut node = Node::new(uuid, HardwareType::Ipmi, state);
        node.driver_info.insert("deploy_kernel".into(), "agent/vmlinuz".into());
        node.driver_info
            .insert("deploy_ramdisk".into(), "http://images.example/agent.cpio.gz".into());
        node
    }

    #[test]
    fn deploying_nodes_boot_the_ramdisk_with_the_api_url() {
        let script = render(&node(ProvisionState::DeployWait), "52:54:00:12:34:56", &settings());
        assert_eq!(
            script,
            "#!ipxe\n\
             echo ferric: booting the ramdisk of node 6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11 (wait call-back)\n\
             kernel http://198.18.0.1:8080/files/agent/vmlinuz initrd=ramdisk ipa-api-url=http://198.18.0.1:6385 \
             ferric.api_url=http://198.18.0.1:6385 ferric.node=6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11 \
             BOOTIF=01-52-54-00-12-34-56 console=ttyS0\n\
             initrd --name ramdisk http://images.example/agent.cpio.gz\n\
             boot\n"
        );
    }

    #[test]
    fn inspection_adds_the_callback_and_rescue_uses_rescue_images() {
        let inspect = render(&node(ProvisionState::InspectWait), "52:54:00:12:34:56", &settings());
        assert!(inspect
            .contains("ipa-inspection-callback-url=http://198.18.0.1:6385/v1/continue_inspection"));
        let mut rescuing = node(ProvisionState::Rescuing);
        assert!(matches!(decide(&rescuing, "m", &settings()), BootAction::Misconfigured(_)));
        rescuing.driver_info.insert("rescue_kernel".into(), "r/k".into());
        rescuing.driver_info.insert("rescue_ramdisk".into(), "r/i".into());
        assert!(render(&rescuing, "m", &settings()).contains("/files/r/k"));
    }

    #[test]
    fn active_boots_disk_and_resting_states_exit() {
        assert!(render(&node(ProvisionState::Active), "m", &settings())
            .contains("sanboot --no-describe --drive 0x80"));
        for state in [
            ProvisionState::Available,
            ProvisionState::Manageable,
            ProvisionState::Enroll,
            ProvisionState::DeployFailed,
        ] {
            let script = render(&node(state), "m", &settings());
            assert!(script.ends_with("exit\n"), "{state}: {script}");
        }
    }

    #[test]
    fn missing_images_are_explained_on_the_console() {
        let mut broken = node(ProvisionState::Cleaning);
        broken.driver_info.remove("deploy_kernel");
        let script = render(&broken, "m", &settings());
        assert!(script.contains("echo ferric: cannot boot: node 6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11 has no deploy_kernel/deploy_ramdisk"));
        assert!(script.ends_with("exit 1\n"));
    }
}
