//! [`SimulatedMachine`]: a machine in memory, for tests and large simulated
//! fleets. It counts what was done to it and has fault knobs: answer slowly
//! ([`Faults::delay`]) or never ([`Faults::unresponsive`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::machine::{BootDevice, BootSetting, Machine, MachineError, PowerState, Result};

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every operation waits this long first.
    pub delay: Duration,
    /// Every operation hangs (until the knob is cleared; front ends give up
    /// on their own deadline).
    pub unresponsive: bool,
}

/// Counters of what happened to a simulated machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub power_state_reads: u64,
    pub power_ons: u64,
    pub power_offs: u64,
    pub soft_offs: u64,
    pub resets: u64,
    pub power_cycles: u64,
    pub boot_device_sets: u64,
    /// Starts (off → on, including through power cycle).
    pub starts: u64,
}

/// The state of a simulated machine, readable and changeable through
/// [`SimulatedMachine::state`].
#[derive(Debug, Clone, Default)]
pub struct SimState {
    pub power: Option<PowerState>,
    pub boot: BootSetting,
    /// The device the last start booted from.
    pub last_boot: Option<BootDevice>,
    pub counters: Counters,
    pub faults: Faults,
}

impl SimState {
    pub fn power_state(&self) -> PowerState {
        self.power.unwrap_or(PowerState::Off)
    }
}

/// An in-memory machine. Cheap to clone (clones share state).
#[derive(Debug, Clone)]
pub struct SimulatedMachine {
    name: String,
    state: Arc<Mutex<SimState>>,
}

impl SimulatedMachine {
    /// A machine that is off, with no boot override.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), state: Arc::new(Mutex::new(SimState::default())) }
    }

    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// Waits as the fault knobs say.
    async fn enter(&self) {
        loop {
            let faults = self.state().faults.clone();
            if faults.unresponsive {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if !faults.delay.is_zero() {
                tokio::time::sleep(faults.delay).await;
            }
            return;
        }
    }

    fn start(state: &mut SimState) {
        state.power = Some(PowerState::On);
        state.counters.starts += 1;
        state.last_boot = Some(state.boot.device);
        state.boot = state.boot.after_start();
    }
}

#[async_trait]
impl Machine for SimulatedMachine {
    fn name(&self) -> &str {
        &self.name
    }

    async fn power_state(&self) -> Result<PowerState> {
        self.enter().await;
        let mut state = self.state();
        state.counters.power_state_reads += 1;
        Ok(state.power_state())
    }

    async fn power_on(&self) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        state.counters.power_ons += 1;
        if !state.power_state().is_on() {
            Self::start(&mut state);
        }
        Ok(())
    }

    async fn power_off(&self) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        state.counters.power_offs += 1;
        state.power = Some(PowerState::Off);
        Ok(())
    }

    async fn soft_off(&self) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        state.counters.soft_offs += 1;
        // The simulated guest obeys the power button at once.
        state.power = Some(PowerState::Off);
        Ok(())
    }

    async fn reset(&self) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        if !state.power_state().is_on() {
            return Err(MachineError::PoweredOff(self.name.clone()));
        }
        state.counters.resets += 1;
        Self::start(&mut state);
        Ok(())
    }

    async fn power_cycle(&self) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        state.counters.power_cycles += 1;
        state.power = Some(PowerState::Off);
        Self::start(&mut state);
        Ok(())
    }

    async fn boot_device(&self) -> Result<BootSetting> {
        self.enter().await;
        Ok(self.state().boot)
    }

    async fn set_boot_device(&self, setting: BootSetting) -> Result<()> {
        self.enter().await;
        let mut state = self.state();
        state.counters.boot_device_sets += 1;
        state.boot = setting;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn once_override_is_used_by_one_start() {
        let machine = SimulatedMachine::new("m");
        machine.set_boot_device(BootSetting::new(BootDevice::Pxe, false, false)).await.unwrap();
        machine.power_on().await.unwrap();
        assert_eq!(machine.state().last_boot, Some(BootDevice::Pxe));
        assert_eq!(machine.boot_device().await.unwrap().device, BootDevice::None);
        machine.set_boot_device(BootSetting::new(BootDevice::Disk, true, true)).await.unwrap();
        machine.reset().await.unwrap();
        machine.power_cycle().await.unwrap();
        assert_eq!(machine.state().last_boot, Some(BootDevice::Disk));
        assert_eq!(machine.boot_device().await.unwrap().device, BootDevice::Disk);
        assert_eq!(machine.counters().starts, 3);
    }

    #[tokio::test]
    async fn reset_needs_power() {
        let machine = SimulatedMachine::new("m");
        assert!(matches!(machine.reset().await, Err(MachineError::PoweredOff(_))));
        machine.power_cycle().await.unwrap();
        assert_eq!(machine.power_state().await.unwrap(), PowerState::On);
        machine.soft_off().await.unwrap();
        assert_eq!(machine.power_state().await.unwrap(), PowerState::Off);
    }

    #[tokio::test]
    async fn slow_machine_waits() {
        let machine = SimulatedMachine::new("m");
        machine.set_faults(Faults { delay: Duration::from_millis(100), unresponsive: false });
        let started = std::time::Instant::now();
        machine.power_state().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
        machine.set_faults(Faults { unresponsive: true, ..Faults::default() });
        let hung = tokio::time::timeout(Duration::from_millis(200), machine.power_on()).await;
        assert!(hung.is_err());
    }
}
