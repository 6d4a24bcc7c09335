//! The driver interfaces. Each is a small trait; [`Interface`] is what they
//! all share (validation and steps). Operations that only some interfaces
//! have live in the extension traits.

use std::time::Duration;

use ferric_types::{
    BootDevice, InterfaceKind, Node, PowerState, PowerTarget, VirtualMedia, VirtualMediaSlot,
    VmediaDevice,
};

use crate::error::DriverError;
use crate::steps::{Step, StepPhase};

/// How a step or operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Finished; go on with the next step.
    Done,
    /// Handed over to something outside the conductor (the agent); the node
    /// waits for its call-back.
    Wait,
}

/// What every interface implementation provides.
#[async_trait::async_trait]
pub trait Interface: Send + Sync {
    /// Which interface this is.
    fn kind(&self) -> InterfaceKind;

    /// Checks the node's configuration (`driver_info`, ...) without touching
    /// hardware.
    fn validate(&self, node: &Node) -> Result<(), DriverError>;

    /// `driver_info` keys this implementation reads, with a description.
    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// The steps this interface offers in `phase`, with default priorities.
    fn steps(&self, phase: StepPhase) -> Vec<Step> {
        let _ = phase;
        Vec::new()
    }

    /// Whether a user may request step `name` in `phase` (manual cleaning,
    /// servicing): by default, the steps the interface declares.
    fn accepts_step(&self, phase: StepPhase, name: &str) -> bool {
        self.steps(phase).iter().any(|step| step.step == name)
    }

    /// Runs one of this interface's steps.
    async fn execute_step(&self, node: &mut Node, step: &Step) -> Result<StepOutcome, DriverError> {
        let _ = node;
        Err(DriverError::Unsupported { interface: self.kind(), operation: step.step.clone() })
    }

    /// Whether `step` runs in the deploy ramdisk: the conductor then boots
    /// the ramdisk first and runs the step once the agent has called back.
    fn step_needs_agent(&self, step: &Step) -> bool {
        let _ = step;
        false
    }

    /// Called when the agent calls back while `step` (which returned
    /// [`StepOutcome::Wait`]) is in progress: `Done` when it has finished,
    /// `Wait` while it is still running. By default a step that waited is
    /// finished at the call-back.
    async fn continue_step(
        &self,
        node: &mut Node,
        step: &Step,
    ) -> Result<StepOutcome, DriverError> {
        let _ = (node, step);
        Ok(StepOutcome::Done)
    }

    /// The BIOS settings the BMC reports now (`name`, `value`), for bios
    /// interfaces that can read them. The conductor stores them after each
    /// of the interface's steps; `None`: nothing to record.
    fn bios_settings(&self, node: &Node) -> Option<Vec<(String, String)>> {
        let _ = node;
        None
    }

    /// The firmware components the BMC reports now (`component`, current
    /// version), for firmware interfaces that can read them. The conductor
    /// records them when cleaning or servicing starts and after each of the
    /// interface's steps; `None`: nothing to record.
    fn firmware_components(&self, node: &Node) -> Option<Vec<(String, String)>> {
        let _ = node;
        None
    }
}

/// Power control.
#[async_trait::async_trait]
pub trait PowerInterface: Interface {
    async fn get_power_state(&self, node: &Node) -> Result<PowerState, DriverError>;

    /// Performs `target` and returns once the node reached the resulting
    /// state (or `timeout` passed).
    async fn set_power_state(
        &self,
        node: &Node,
        target: PowerTarget,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError>;
}

/// Boot device and other out-of-band management.
#[async_trait::async_trait]
pub trait ManagementInterface: Interface {
    fn supported_boot_devices(&self, node: &Node) -> Vec<BootDevice>;

    async fn get_boot_device(
        &self,
        node: &Node,
    ) -> Result<(Option<BootDevice>, Option<bool>), DriverError>;

    /// Sets the next boot device. The node is mutable so drivers that keep
    /// state on it (the fake one) can; real drivers only read it.
    async fn set_boot_device(
        &self,
        node: &mut Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError>;

    /// Attaches an image as virtual media. Unsupported by default.
    async fn attach_virtual_media(
        &self,
        node: &mut Node,
        media: &VirtualMedia,
    ) -> Result<(), DriverError> {
        let _ = (node, media);
        Err(DriverError::Unsupported {
            interface: InterfaceKind::Management,
            operation: "attach_virtual_media".into(),
        })
    }

    /// The BMC's virtual media slots and what is inserted in them.
    /// Unsupported by default.
    async fn get_virtual_media(&self, node: &Node) -> Result<Vec<VirtualMediaSlot>, DriverError> {
        let _ = node;
        Err(DriverError::Unsupported {
            interface: InterfaceKind::Management,
            operation: "get_virtual_media".into(),
        })
    }

    /// Detaches the images of `devices` (all when empty). Unsupported by
    /// default.
    async fn detach_virtual_media(
        &self,
        node: &mut Node,
        devices: &[VmediaDevice],
    ) -> Result<(), DriverError> {
        let _ = (node, devices);
        Err(DriverError::Unsupported {
            interface: InterfaceKind::Management,
            operation: "detach_virtual_media".into(),
        })
    }
}

/// Getting the deploy ramdisk or the instance booted.
#[async_trait::async_trait]
pub trait BootInterface: Interface {
    /// The boot device the conductor sets (through management) before
    /// powering the node into the ramdisk.
    fn ramdisk_boot_device(&self) -> BootDevice {
        BootDevice::Pxe
    }

    async fn prepare_ramdisk(&self, node: &mut Node) -> Result<(), DriverError>;
    async fn clean_up_ramdisk(&self, node: &mut Node) -> Result<(), DriverError>;
    async fn prepare_instance(&self, node: &mut Node) -> Result<(), DriverError>;
    async fn clean_up_instance(&self, node: &mut Node) -> Result<(), DriverError>;
}

/// Writing the instance. Deploy work itself is done through its steps.
#[async_trait::async_trait]
pub trait DeployInterface: Interface {
    /// Undoes a deployment (on `deleted`): the node ends powered off.
    async fn tear_down(&self, node: &mut Node) -> Result<(), DriverError>;
}

/// Moving the node's ports between networks. Defaults do nothing.
#[async_trait::async_trait]
pub trait NetworkInterface: Interface {
    async fn add_provisioning_network(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
    async fn remove_provisioning_network(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
    async fn configure_tenant_networks(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
    async fn unconfigure_tenant_networks(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
    async fn add_cleaning_network(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
    async fn remove_cleaning_network(&self, node: &mut Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
}

/// Hardware inspection.
#[async_trait::async_trait]
pub trait InspectInterface: Interface {
    /// Whether inspection runs in the deploy ramdisk: the conductor boots
    /// it and asks the agent for the inventory when it calls back.
    fn needs_agent(&self) -> bool {
        false
    }

    /// Inspects the node out of band; `Wait` when something else will
    /// report back.
    async fn inspect_hardware(&self, node: &mut Node) -> Result<StepOutcome, DriverError>;
}

/// Rescue mode.
#[async_trait::async_trait]
pub trait RescueInterface: Interface {
    async fn rescue(&self, node: &mut Node) -> Result<StepOutcome, DriverError>;
    async fn unrescue(&self, node: &mut Node) -> Result<(), DriverError>;
}
