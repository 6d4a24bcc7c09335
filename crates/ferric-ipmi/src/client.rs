//! A small client for one BMC: opens a session on demand, reuses it for
//! every command, and replaces it when it failed, timed out or sat idle.
//! Commands from concurrent callers are serialized by one lock, so a
//! session's sequence numbers never interleave.

use std::time::Duration;

use tokio::sync::Mutex;

use crate::commands::{self, BootFlags, ChassisControl, ChassisStatus, CipherSuiteRecord, Command};
use crate::config::Config;
use crate::error::{IpmiError, Result};
use crate::session::Session;

/// The longest we wait for a reply to Close Session before giving up.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// A client of one BMC. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Client {
    config: Config,
    session: Mutex<Option<Session>>,
}

impl Client {
    /// A client for `config` (checked now; no packet is sent until the first
    /// command).
    pub fn new(config: Config) -> Result<Client> {
        config.validate()?;
        Ok(Client { config, session: Mutex::new(None) })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sends `command` over the cached session (opened if needed) and returns
    /// its response data. A session that fails with anything but a
    /// completion code is dropped; if it had been reused, an idempotent
    /// command is tried once more on a fresh session, since the BMC may have
    /// expired the old one.
    pub async fn execute(&self, command: &Command) -> Result<Vec<u8>> {
        let mut slot = self.session.lock().await;
        if let Some(stale) =
            slot.take_if(|session| session.last_used().elapsed() > self.config.idle_timeout)
        {
            stale.close_within(CLOSE_WAIT).await;
        }
        let reused = slot.is_some();
        let result = Self::run(&self.config, &mut slot, command).await;
        match result {
            Err(IpmiError::Timeout { .. }) if reused && command.idempotent => {
                tracing::debug!(
                    bmc = %self.config.host, "reused IPMI session timed out, opening a new one"
                );
                Self::run(&self.config, &mut slot, command).await
            }
            other => other,
        }
    }

    async fn run(
        config: &Config,
        slot: &mut Option<Session>,
        command: &Command,
    ) -> Result<Vec<u8>> {
        let mut session = match slot.take() {
            Some(session) => session,
            None => Session::open(config).await?,
        };
        let result = session.execute(command).await;
        match &result {
            Ok(_) => *slot = Some(session),
            Err(error) if error.session_still_valid() => *slot = Some(session),
            Err(_) => {}
        }
        result
    }

    /// The cipher suite of the current session, if one is open.
    pub async fn cipher_suite(&self) -> Option<u8> {
        self.session.lock().await.as_ref().map(Session::cipher_suite)
    }

    /// Get Chassis Status.
    pub async fn chassis_status(&self) -> Result<ChassisStatus> {
        ChassisStatus::decode(&self.execute(&commands::get_chassis_status()).await?)
    }

    /// Whether the chassis power is on.
    pub async fn power_is_on(&self) -> Result<bool> {
        Ok(self.chassis_status().await?.power_on)
    }

    /// Chassis Control.
    pub async fn chassis_control(&self, action: ChassisControl) -> Result<()> {
        self.execute(&commands::chassis_control(action)).await.map(drop)
    }

    /// Set System Boot Options parameter 5.
    pub async fn set_boot_flags(&self, flags: BootFlags) -> Result<()> {
        let command =
            commands::set_system_boot_options(commands::BOOT_PARAM_BOOT_FLAGS, &flags.encode());
        self.execute(&command).await.map(drop)
    }

    /// Set System Boot Options parameter 3 to stop the BMC clearing the boot
    /// flags when no Chassis Control follows within 60 seconds.
    pub async fn disable_boot_flag_timeout(&self) -> Result<()> {
        let command =
            commands::set_system_boot_options(commands::BOOT_PARAM_VALID_BIT_CLEARING, &[0x08]);
        self.execute(&command).await.map(drop)
    }

    /// Get System Boot Options parameter 5.
    pub async fn boot_flags(&self) -> Result<BootFlags> {
        let data = self
            .execute(&commands::get_system_boot_options(commands::BOOT_PARAM_BOOT_FLAGS))
            .await?;
        commands::decode_boot_flags_response(&data)
    }

    /// Get Channel Cipher Suites (over a session).
    pub async fn cipher_suites(&self) -> Result<Vec<CipherSuiteRecord>> {
        let mut slot = self.session.lock().await;
        let mut session = match slot.take() {
            Some(session) => session,
            None => Session::open(&self.config).await?,
        };
        let result = session.cipher_suites().await;
        if result.as_ref().map_or_else(IpmiError::session_still_valid, |_| true) {
            *slot = Some(session);
        }
        result
    }

    /// Closes the cached session, if any.
    pub async fn close(&self) -> Result<()> {
        match self.session.lock().await.take() {
            Some(session) => session.close().await,
            None => Ok(()),
        }
    }
}
