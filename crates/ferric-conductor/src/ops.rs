//! Running one node's pending action: a power change, or a provision
//! operation as an ordered list of driver steps.
//!
//! Every exit path ends in [`finish`], which applies the final state
//! transition, clears the pending action and releases the reservation in
//! one write. A panic or crash before that leaves the node reserved by this
//! host, which start-up recovery (or a peer, if this host stays dead) fails
//! cleanly.

use std::sync::Arc;
use std::time::Duration;

use ferric_driver::steps::order_automated;
use ferric_driver::{DriverError, DriverSet, Step, StepOutcome, StepPhase};
use ferric_types::{
    apply_event, Event, InterfaceKind, JsonObject, Node, PendingAction, PowerState, PowerTarget,
    ProvisionRequest, ProvisionState, Severity, Timestamp, Verb,
};
use serde_json::Value;
use uuid::Uuid;

use crate::cleaning::CleaningSource;
use crate::record;
use crate::Inner;

/// Why an operation stopped early.
#[derive(Debug)]
enum Failure {
    /// A driver or validation error: the node goes to the failure state.
    Failed(String),
    /// The store failed; the node stays reserved and recovery handles it.
    Store(ferric_store::StoreError),
}

impl From<ferric_store::StoreError> for Failure {
    fn from(error: ferric_store::StoreError) -> Self {
        Self::Store(error)
    }
}

/// How an operation ended, and so what [`finish`] writes.
#[derive(Debug)]
enum Ending {
    /// Apply this event (done, wait, hold, fail...) to the provision state.
    Event(Event),
    /// Leave the provision state as it is (the API already moved it).
    Stay,
    /// Still waiting for the agent, which is alive: leave the state, but
    /// restart the wait timeout (as Ironic's heartbeats do).
    StillWaiting,
}

/// Runs the pending action of `uuid` if it is reserved for this conductor.
/// Called in its own task; `running` holds the uuid until it returns.
pub(crate) async fn run(inner: Arc<Inner>, uuid: Uuid) {
    // Loop: finishing one operation can queue the next on the same node
    // (undeploy → automated cleaning), which this task then runs at once.
    loop {
        let node = match inner.store.node_get_by_uuid(uuid).await {
            Ok(node) => node,
            Err(error) => {
                tracing::warn!(node = %uuid, %error, "could not load node for its pending action");
                return;
            }
        };
        if node.reservation.is_none() && node.provision_state == ProvisionState::Cleaning {
            if !claim_cleaning(&inner, &node).await {
                return;
            }
            continue;
        }
        if node.reservation.as_deref() != Some(inner.config.hostname.as_str()) {
            return;
        }
        let Some(action) = node.pending_action.clone() else {
            return;
        };
        match action {
            PendingAction::Power { target, timeout_seconds } => {
                power(&inner, node, target, timeout_seconds.map(Duration::from_secs)).await
            }
            PendingAction::Provision(request) => provision(&inner, node, request).await,
            PendingAction::AgentCallback => agent_callback(&inner, node).await,
        }
    }
}

async fn power(inner: &Inner, node: Node, target: PowerTarget, timeout: Option<Duration>) {
    let timeout = timeout.or(Some(inner.config.power_state_change_timeout));
    let outcome = match DriverSet::load(&node) {
        Ok(drivers) => match drivers.power.set_power_state(&node, target, timeout).await {
            Ok(()) => Ok(target.resulting_state()),
            Err(error) => {
                // What the BMC says now; if it cannot say, what we knew.
                let observed = drivers.power.get_power_state(&node).await.ok().or(node.power_state);
                Err((error, observed))
            }
        },
        Err(error) => Err((error, node.power_state)),
    };
    let host = inner.config.hostname.clone();
    let message = outcome.as_ref().err().map(|(error, _)| {
        format!(
            "Failed to change power state to '{target}' by '{}'. Error: {error}",
            node.interfaces.get(InterfaceKind::Power).map(|i| i.as_str()).unwrap_or("power")
        )
    });
    let result = record::update(&inner.store, node.uuid, |fresh| {
        if fresh.reservation.as_deref() != Some(host.as_str()) {
            return false;
        }
        fresh.power_state = match &outcome {
            Ok(state) => Some(*state),
            Err((_, observed)) => *observed,
        };
        fresh.target_power_state = None;
        if outcome.is_ok() && target != PowerTarget::On {
            // Powering off or rebooting ends the running agent.
            forget_agent(fresh);
        }
        // A user's request cleared the error when it was accepted; a power
        // off queued by the conductor (a timed-out ramdisk) keeps the reason.
        if message.is_some() {
            fresh.last_error = message.clone();
        }
        fresh.pending_action = None;
        fresh.reservation = None;
        fresh.conductor_affinity = Some(host.clone());
        true
    })
    .await;
    match result {
        Ok(Some(stored)) => {
            if let Some(message) = &message {
                record::history(&inner.store, &stored, &host, Severity::Error, "power", message)
                    .await;
            }
        }
        Ok(None) => {}
        Err(error) => tracing::error!(node = %node.uuid, %error, "could not record power result"),
    }
}

async fn provision(inner: &Inner, node: Node, request: ProvisionRequest) {
    let uuid = node.uuid;
    let verb = request.verb.map(Verb::canonical);
    let started = std::time::Instant::now();
    tracing::info!(
        node = %uuid,
        state = %node.provision_state,
        verb = %verb.map(|verb| verb.to_string()).unwrap_or_default(),
        "operation started"
    );
    let result = match (node.provision_state, verb) {
        (ProvisionState::Verifying, _) => verify(inner, node).await,
        (ProvisionState::Cleaning, Some(Verb::Provide)) => clean_automated(inner, node).await,
        (ProvisionState::Cleaning, Some(Verb::Clean)) => clean_manual(inner, node, &request).await,
        (ProvisionState::Deploying, _) => deploy(inner, node, &request).await,
        (ProvisionState::Deleting, _) => undeploy(inner, node).await,
        (ProvisionState::Inspecting, _) => inspect(inner, node).await,
        (ProvisionState::Adopting, _) => adopt(node).await,
        (ProvisionState::Rescuing, _) => rescue(node, &request).await,
        (ProvisionState::Unrescuing, _) => unrescue(node).await,
        (ProvisionState::Servicing, _) => service(inner, node, &request).await,
        // `unhold`: carry on with the remaining steps.
        (
            ProvisionState::DeployWait | ProvisionState::CleanWait | ProvisionState::ServiceWait,
            Some(Verb::Unhold),
        ) => resume_steps(inner, node).await,
        // Abort, or a verb whose transition is all there is to it
        // (available → manageable): nothing more to do.
        (_, Some(Verb::Abort)) => {
            let mut node = node;
            shut_down_ramdisk(inner, &mut node).await;
            node.last_error = Some(format!(
                "The operation was aborted by request; the node is now \"{}\"",
                node.provision_state
            ));
            Ok((node, Ending::Stay))
        }
        _ => Ok((node, Ending::Stay)),
    };
    settle(inner, uuid, result, started).await;
}

/// Hands an operation's result to [`finish`]; a failed operation first
/// powers off a node that runs the deploy ramdisk (as Ironic does), so a
/// failed deploy or clean never leaves the agent running.
async fn settle(
    inner: &Inner,
    uuid: Uuid,
    result: Result<(Node, Ending), Failure>,
    started: std::time::Instant,
) {
    let (working, ending, error) = match result {
        Ok((working, ending)) => (Some(working), ending, None),
        Err(Failure::Failed(message)) => {
            let mut working = None;
            if let Ok(mut node) = inner.store.node_get_by_uuid(uuid).await {
                if node.driver_internal_info.contains_key(RAMDISK_BOOTED) {
                    shut_down_ramdisk(inner, &mut node).await;
                    working = Some(node);
                }
            }
            (working, Ending::Event(Event::Fail), Some(message))
        }
        Err(Failure::Store(error)) => {
            tracing::error!(node = %uuid, %error, "store failure during an operation; recovery will fail it");
            return;
        }
    };
    finish(inner, uuid, working, ending, error, started.elapsed()).await;
}

/// Set while the node runs (or is booting) the deploy ramdisk for the
/// current operation.
const RAMDISK_BOOTED: &str = "ramdisk_booted";
/// Set while the conductor waits for a freshly booted agent's first call-back.
const AWAITING_AGENT: &str = "agent_wait_for_callback";

/// Boots the node into the deploy ramdisk: provisioning (or cleaning)
/// network, boot preparation, boot device, power on.
async fn boot_ramdisk(
    inner: &Inner,
    node: &mut Node,
    drivers: &DriverSet,
    phase: StepPhase,
) -> Result<(), Failure> {
    let context = "Failed to boot the deploy ramdisk";
    match phase {
        StepPhase::Deploy => drivers.network.add_provisioning_network(node).await,
        _ => drivers.network.add_cleaning_network(node).await,
    }
    .map_err(|e| failed(context, e))?;
    drivers.boot.prepare_ramdisk(node).await.map_err(|e| failed(context, e))?;
    let device = drivers.boot.ramdisk_boot_device();
    drivers
        .management
        .set_boot_device(node, device, false)
        .await
        .map_err(|e| failed(context, e))?;
    // A fresh agent gets a fresh token at lookup.
    forget_agent(node);
    let target = if node.power_state == Some(PowerState::Off) {
        PowerTarget::On
    } else {
        PowerTarget::Reboot
    };
    drivers
        .power
        .set_power_state(node, target, Some(inner.config.power_state_change_timeout))
        .await
        .map_err(|e| failed(context, e))?;
    node.power_state = Some(PowerState::On);
    node.driver_internal_info.insert(RAMDISK_BOOTED.into(), Value::Bool(true));
    node.driver_internal_info.insert(AWAITING_AGENT.into(), Value::Bool(true));
    Ok(())
}

/// Powers off a node running the deploy ramdisk and undoes its boot
/// preparation. Best effort: used on failure and abort paths, which must
/// not fail again.
async fn shut_down_ramdisk(inner: &Inner, node: &mut Node) {
    if node.driver_internal_info.remove(RAMDISK_BOOTED).is_none() {
        return;
    }
    node.driver_internal_info.remove(AWAITING_AGENT);
    let Ok(drivers) = DriverSet::load(node) else { return };
    if !node.disable_power_off {
        match drivers
            .power
            .set_power_state(node, PowerTarget::Off, Some(inner.config.power_state_change_timeout))
            .await
        {
            Ok(()) => node.power_state = Some(PowerState::Off),
            Err(error) => {
                tracing::warn!(node = %node.uuid, %error, "could not power off the ramdisk")
            }
        }
    }
    if let Err(error) = drivers.boot.clean_up_ramdisk(node).await {
        tracing::warn!(node = %node.uuid, %error, "could not clean up the ramdisk boot");
    }
    forget_agent(node);
}

/// The agent called back (the API reserved the node for us with this
/// action): run the step it was booted for, or check on the step it is
/// running.
async fn agent_callback(inner: &Inner, node: Node) {
    let uuid = node.uuid;
    let started = std::time::Instant::now();
    let result = continue_with_agent(inner, node).await;
    settle(inner, uuid, result, started).await;
}

async fn continue_with_agent(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    let phase = match node.provision_state {
        ProvisionState::DeployWait => StepPhase::Deploy,
        ProvisionState::CleanWait => StepPhase::Clean,
        ProvisionState::ServiceWait => StepPhase::Service,
        ProvisionState::InspectWait => return inspect_with_agent(inner, node).await,
        // Nothing of ours waits for an agent in other states.
        _ => return Ok((node, Ending::Stay)),
    };
    let drivers = load_drivers(&node)?;
    let steps = stored_steps(&node, phase);
    let index = step_index(&node, phase).unwrap_or(0);
    let Some(step) = steps.get(index).cloned() else {
        return Ok((node, Ending::Stay));
    };
    if node.driver_internal_info.remove(AWAITING_AGENT).is_some() {
        // The ramdisk is up: run the step it was booted for.
        tracing::info!(node = %node.uuid, phase = phase_name(phase), "the deploy ramdisk called back");
        let node = resume(inner, node).await?;
        return run_steps(inner, node, &drivers, phase).await;
    }
    let interface = step_interface(&drivers, &step)?;
    let outcome = interface
        .continue_step(&mut node, &step)
        .await
        .map_err(|error| step_failed(&node, phase, &step, error))?;
    match outcome {
        StepOutcome::Wait => Ok((node, Ending::StillWaiting)),
        StepOutcome::Done => {
            tracing::info!(node = %node.uuid, phase = phase_name(phase), step = %step.step, "agent step finished");
            set_step_index(&mut node, phase, index + 1);
            let node = resume(inner, node).await?;
            run_steps(inner, node, &drivers, phase).await
        }
    }
}

/// The agent of a node being inspected called back: take its inventory,
/// record what it says (properties, ports for its booting NICs), power the
/// ramdisk off.
async fn inspect_with_agent(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    node.driver_internal_info.remove(AWAITING_AGENT);
    let agent = ferric_driver::agent_client::AgentClient::for_node(&node)
        .map_err(|e| failed("Inspection failed", e))?;
    let result = agent
        .run("system.get_inventory", serde_json::Map::new(), true)
        .await
        .map_err(|e| failed("Inspection failed", e))?;
    let inventory = result
        .command_result
        .as_ref()
        .and_then(|value| value.get("inventory"))
        .filter(|value| value.is_object())
        .cloned()
        .ok_or_else(|| {
            Failure::Failed(format!(
                "Inspection failed: the agent sent no inventory ({})",
                result.error_message()
            ))
        })?;
    let plugin_data = serde_json::json!({"source": "ferric-agent", "agent_version":
        node.driver_internal_info.get("agent_version").cloned().unwrap_or(Value::Null)});
    inner.store.node_inventory_put(node.uuid, &inventory, &plugin_data).await?;
    let (properties, macs) = ferric_driver::direct::properties_from_inventory(&inventory);
    node.properties.extend(properties);
    for mac in macs {
        let Some(mac) = ferric_types::validate::normalize_mac(&mac) else { continue };
        match inner.store.port_get_by_address(&mac).await {
            Ok(_) => {}
            Err(ferric_store::StoreError::NotFound { .. }) => {
                let mut port = ferric_types::Port::new(Uuid::new_v4(), mac.clone(), node.uuid);
                port.pxe_enabled = true;
                if let Err(error) = inner.store.port_create(&port).await {
                    tracing::warn!(node = %node.uuid, %mac, %error, "inspection could not add a port");
                }
            }
            Err(error) => return Err(Failure::Store(error)),
        }
    }
    let rules_failed = |e| Failure::Failed(format!("Inspection failed: {e}"));
    let planned = crate::inspection_rules::plan(&inner.store, &node, &inventory, &plugin_data)
        .await
        .map_err(rules_failed)?;
    node.inspection_finished_at = Some(Timestamp::now());
    shut_down_ramdisk(inner, &mut node).await;
    let node = resume(inner, node).await?;
    let node =
        crate::inspection_rules::apply(&inner.store, node, &planned).await.map_err(rules_failed)?;
    Ok((node, Ending::Event(Event::Done)))
}

/// Moves the node from its wait state back to the working state (saving the
/// working copy's driver fields in the same write); `None` when its state
/// does not resume (the API moved it already).
async fn try_resume(inner: &Inner, node: &Node) -> Result<Option<Node>, Failure> {
    let working = node.clone();
    let resumed = record::update(&inner.store, node.uuid, |fresh| {
        match apply_event(fresh.provision_state, Event::Resume, fresh.target_provision_state) {
            Ok(transition) => {
                record::copy_driver_fields(&working, fresh);
                fresh.power_state = working.power_state;
                fresh.provision_state = transition.to;
                fresh.target_provision_state = transition.target;
                fresh.provision_updated_at = Some(Timestamp::now());
                true
            }
            Err(_) => false,
        }
    })
    .await?;
    Ok(resumed)
}

/// [`try_resume`], failing the operation when the node cannot resume.
async fn resume(inner: &Inner, node: Node) -> Result<Node, Failure> {
    try_resume(inner, &node).await?.ok_or_else(|| {
        Failure::Failed(format!("Node {} could not resume its operation", node.uuid))
    })
}

/// Writes the outcome: the driver-owned fields of the working copy, the
/// state transition, the error, and the release of the lock.
async fn finish(
    inner: &Inner,
    uuid: Uuid,
    working: Option<Node>,
    ending: Ending,
    error: Option<String>,
    elapsed: Duration,
) {
    let host = inner.config.hostname.clone();
    let mut from_state = None;
    let result = record::update(&inner.store, uuid, |fresh| {
        if fresh.reservation.as_deref() != Some(host.as_str()) {
            return false;
        }
        if let Some(working) = &working {
            record::copy_driver_fields(working, fresh);
            fresh.instance_uuid = working.instance_uuid.clone();
            fresh.allocation_uuid = working.allocation_uuid;
            fresh.instance_name = working.instance_name.clone();
            fresh.power_state = working.power_state;
            if working.last_error.is_some() {
                fresh.last_error = working.last_error.clone();
            }
        }
        from_state = Some(fresh.provision_state);
        if let Ending::StillWaiting = ending {
            fresh.provision_updated_at = Some(Timestamp::now());
        }
        if let Ending::Event(event) = ending {
            match apply_event(fresh.provision_state, event, fresh.target_provision_state) {
                Ok(transition) => {
                    fresh.provision_state = transition.to;
                    fresh.target_provision_state = transition.target;
                    fresh.provision_updated_at = Some(Timestamp::now());
                }
                Err(invalid) => {
                    tracing::error!(node = %fresh.uuid, %invalid, "conductor produced an illegal event");
                }
            }
        }
        if fresh.provision_state.is_stable() || fresh.provision_state.is_failure() {
            // The agent's token and address are good for one operation only.
            forget_agent(fresh);
            fresh.driver_internal_info.remove(RAMDISK_BOOTED);
            // Nor do step lists outlive their operation (an abort or a
            // failure left them behind), as Ironic wipes them.
            for phase in [StepPhase::Deploy, StepPhase::Clean, StepPhase::Service] {
                fresh.driver_internal_info.remove(steps_key(phase));
                fresh.driver_internal_info.remove(index_key(phase));
            }
        }
        if event_is_terminal(&ending) {
            fresh.clean_step = JsonObject::new();
            fresh.deploy_step = JsonObject::new();
            fresh.service_step = JsonObject::new();
        }
        if error.is_some() {
            fresh.last_error = error.clone();
            if fresh.provision_state == ProvisionState::CleanFailed {
                // As Ironic: a node that failed cleaning must not be handed
                // to the next tenant by accident.
                fresh.maintenance = true;
                fresh.fault = Some(ferric_types::Fault::CleanFailure);
                fresh.maintenance_reason = error.clone();
            }
        }
        fresh.pending_action = None;
        fresh.reservation = None;
        fresh.conductor_affinity = Some(host.clone());
        true
    })
    .await;
    match result {
        Ok(Some(stored)) => {
            if from_state == Some(stored.provision_state) {
                tracing::debug!(node = %uuid, state = %stored.provision_state, "operation continues");
            } else {
                tracing::info!(
                    node = %uuid,
                    from = %from_state.map(|s| s.to_string()).unwrap_or_default(),
                    to = %stored.provision_state,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "provision state changed"
                );
            }
            if let Some(message) = &error {
                record::history(
                    &inner.store,
                    &stored,
                    &host,
                    Severity::Error,
                    "provisioning",
                    message,
                )
                .await;
            }
        }
        Ok(None) => {
            tracing::warn!(node = %uuid, "node was no longer reserved by us when finishing")
        }
        Err(error) => {
            tracing::error!(node = %uuid, %error, "could not record the end of an operation")
        }
    }
}

/// Drops what ties the node to a running agent (token, callback URL), so
/// the next ramdisk boot gets a fresh token at lookup.
fn forget_agent(node: &mut Node) {
    for key in [
        "agent_secret_token",
        "agent_url",
        "agent_last_heartbeat",
        "agent_version",
        "agent_verify_ca",
        "agent_command_id",
        AWAITING_AGENT,
    ] {
        node.driver_internal_info.remove(key);
    }
}

fn event_is_terminal(ending: &Ending) -> bool {
    matches!(ending, Ending::Event(Event::Done | Event::Fail))
}

/// After undeploy (`deleting` → `cleaning`): takes the lock again and
/// queues automated cleaning. Returns whether it did.
async fn claim_cleaning(inner: &Inner, node: &Node) -> bool {
    let host = inner.config.hostname.clone();
    let request = ProvisionRequest { verb: Some(Verb::Provide), ..ProvisionRequest::default() };
    let claimed = record::update(&inner.store, node.uuid, |fresh| {
        if fresh.reservation.is_some() || fresh.provision_state != ProvisionState::Cleaning {
            return false;
        }
        fresh.reservation = Some(host.clone());
        fresh.pending_action = Some(PendingAction::Provision(request.clone()));
        true
    })
    .await;
    matches!(claimed, Ok(Some(_)))
}

fn failed(context: &str, error: DriverError) -> Failure {
    Failure::Failed(format!("{context}: {error}"))
}

fn load_drivers(node: &Node) -> Result<DriverSet, Failure> {
    DriverSet::load(node).map_err(|error| failed("Failed to load the node's drivers", error))
}

async fn verify(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    let _ = inner;
    let drivers = load_drivers(&node)?;
    drivers
        .power
        .validate(&node)
        .map_err(|e| failed("Failed to validate power driver interface", e))?;
    drivers
        .management
        .validate(&node)
        .map_err(|e| failed("Failed to validate management driver interface", e))?;
    let state = drivers
        .power
        .get_power_state(&node)
        .await
        .map_err(|e| failed("Failed to get the power state", e))?;
    node.power_state = Some(state);
    Ok((node, Ending::Event(Event::Done)))
}

async fn adopt(node: Node) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    for interface in drivers.all() {
        interface
            .validate(&node)
            .map_err(|e| failed("Failed to validate the node for adoption", e))?;
    }
    Ok((node, Ending::Event(Event::Done)))
}

async fn inspect(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    let _ = inner;
    let drivers = load_drivers(&node)?;
    drivers.inspect.validate(&node).map_err(|e| failed("Failed to validate inspection", e))?;
    node.inspection_started_at = Some(Timestamp::now());
    if drivers.inspect.needs_agent() {
        boot_ramdisk(inner, &mut node, &drivers, StepPhase::Clean).await?;
        return Ok((node, Ending::Event(Event::Wait)));
    }
    let outcome = drivers
        .inspect
        .inspect_hardware(&mut node)
        .await
        .map_err(|e| failed("Failed to inspect hardware", e))?;
    Ok(match outcome {
        StepOutcome::Done => {
            node.inspection_finished_at = Some(Timestamp::now());
            (node, Ending::Event(Event::Done))
        }
        StepOutcome::Wait => (node, Ending::Event(Event::Wait)),
    })
}

async fn rescue(mut node: Node, request: &ProvisionRequest) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    if let Some(password) = &request.rescue_password {
        node.instance_info.insert("rescue_password".into(), Value::String(password.clone()));
    }
    let outcome =
        drivers.rescue.rescue(&mut node).await.map_err(|e| failed("Failed to rescue", e))?;
    Ok(match outcome {
        StepOutcome::Done => (node, Ending::Event(Event::Done)),
        StepOutcome::Wait => (node, Ending::Event(Event::Wait)),
    })
}

async fn unrescue(mut node: Node) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    drivers.rescue.unrescue(&mut node).await.map_err(|e| failed("Failed to unrescue", e))?;
    node.instance_info.remove("rescue_password");
    Ok((node, Ending::Event(Event::Done)))
}

async fn deploy(
    inner: &Inner,
    mut node: Node,
    request: &ProvisionRequest,
) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    resolve_image(inner, &mut node).await?;
    for (kind, interface) in [
        (InterfaceKind::Power, drivers.power.validate(&node)),
        (InterfaceKind::Deploy, drivers.deploy.validate(&node)),
        (InterfaceKind::Boot, drivers.boot.validate(&node)),
    ] {
        interface.map_err(|e| failed(&format!("Failed to validate {kind} interface"), e))?;
    }
    match &request.configdrive {
        Some(configdrive) => {
            node.instance_info.insert("configdrive".into(), configdrive.clone());
        }
        None => {
            node.instance_info.remove("configdrive");
        }
    }
    let mut steps = drivers.steps(StepPhase::Deploy);
    // Deploy templates override driver steps; the request's steps both.
    let templated = crate::templates::deploy_template_steps(&inner.store, &node, &drivers)
        .await
        .map_err(|error| match error {
            crate::templates::TemplateFailure::Store(error) => Failure::Store(error),
            other => Failure::Failed(other.to_string()),
        })?;
    for step in templated {
        steps.retain(|s| !(s.interface == step.interface && s.step == step.step));
        steps.push(step);
    }
    if let Some(user) = &request.deploy_steps {
        for value in user {
            let step = parse_step(value)?;
            steps.retain(|s| !(s.interface == step.interface && s.step == step.step));
            steps.push(step);
        }
    }
    let steps = order_automated(steps);
    start_steps(&mut node, StepPhase::Deploy, &steps);
    run_steps(inner, node, &drivers, StepPhase::Deploy).await
}

/// An `image_source` that is not a URL names an image in ferric's image
/// store: the node gets that image's download URL (`image_url`, as Ironic
/// resolves Glance images), checksum and disk format.
async fn resolve_image(inner: &Inner, node: &mut Node) -> Result<(), Failure> {
    let Some(source) = node.instance_info.get("image_source").and_then(Value::as_str) else {
        return Ok(());
    };
    let source = source.trim().to_owned();
    node.instance_info.remove("image_url");
    if source.contains("://") {
        return Ok(());
    }
    let Some(catalog) = inner.config.images.clone() else {
        return Err(Failure::Failed(format!(
            "image_source \"{source}\" is not a URL, and this conductor has no image store \
             (enable HTTP boot to serve one)"
        )));
    };
    let lookup = source.clone();
    let record = tokio::task::spawn_blocking(move || {
        ferric_imagetools::store::ImageStore::open(&catalog.store)
            .and_then(|store| store.get(&lookup))
            .map(|record| (record, catalog.url_base))
    })
    .await
    .map_err(|error| Failure::Failed(format!("Image store lookup failed: {error}")))?;
    let (record, url_base) = record.map_err(|error| {
        Failure::Failed(format!("Image \"{source}\" could not be used: {error}"))
    })?;
    let info = &mut node.instance_info;
    info.insert(
        "image_url".into(),
        Value::String(format!("{}/{}", url_base.trim_end_matches('/'), record.sha256)),
    );
    // The store computed the checksum at import: it is the one to verify.
    info.remove("image_checksum");
    info.insert("image_os_hash_algo".into(), Value::String("sha512".into()));
    info.insert("image_os_hash_value".into(), Value::String(record.sha512.clone()));
    let format = match record.format {
        ferric_image::format::ImageFormat::Qcow2 => "qcow2",
        _ => "raw",
    };
    info.insert("image_disk_format".into(), Value::String(format.into()));
    Ok(())
}

async fn undeploy(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    let _ = inner;
    let drivers = load_drivers(&node)?;
    drivers.deploy.tear_down(&mut node).await.map_err(|e| failed("Failed to tear down", e))?;
    drivers
        .boot
        .clean_up_instance(&mut node)
        .await
        .map_err(|e| failed("Failed to clean up boot", e))?;
    drivers
        .network
        .unconfigure_tenant_networks(&mut node)
        .await
        .map_err(|e| failed("Failed to unconfigure tenant networks", e))?;
    if node.power_state != Some(PowerState::Off) && !node.disable_power_off {
        drivers
            .power
            .set_power_state(&node, PowerTarget::Off, Some(inner.config.power_state_change_timeout))
            .await
            .map_err(|e| failed("Failed to power off", e))?;
        node.power_state = Some(PowerState::Off);
    }
    node.instance_info = JsonObject::new();
    node.instance_uuid = None;
    node.instance_name = None;
    // The node's allocation ends with its deployment, as in Ironic.
    if node.allocation_uuid.take().is_some() {
        inner.store.allocation_delete_of_node(node.uuid).await?;
    }
    for key in ["deploy_steps", "deploy_step_index", "is_whole_disk_image", "agent_url"] {
        node.driver_internal_info.remove(key);
    }
    Ok((node, Ending::Event(Event::Done)))
}

async fn clean_automated(inner: &Inner, mut node: Node) -> Result<(Node, Ending), Failure> {
    let enabled = node.automated_clean.unwrap_or(inner.config.automated_clean);
    if !enabled {
        return Ok((node, Ending::Event(Event::Done)));
    }
    let drivers = load_drivers(&node)?;
    let source = crate::cleaning::automated_cleaning_source(&inner.config, &node)
        .map_err(Failure::Failed)?;
    let steps = match source {
        CleaningSource::Drivers => order_automated(drivers.steps(StepPhase::Clean)),
        CleaningSource::Runbook(ident) => {
            runbook_clean_steps(inner, &node, &drivers, &ident).await?
        }
    };
    cache_firmware_at_start(inner, &drivers, &node).await;
    start_steps(&mut node, StepPhase::Clean, &steps);
    run_steps(inner, node, &drivers, StepPhase::Clean).await
}

/// The steps of the runbook `ident` for automated cleaning of `node`, in
/// `order`: the runbook must exist, be approved by the node's traits (unless
/// the conductor is told not to check), and name steps the node's
/// interfaces have — without the ramdisk when the runbook disables it.
async fn runbook_clean_steps(
    inner: &Inner,
    node: &Node,
    drivers: &DriverSet,
    ident: &str,
) -> Result<Vec<Step>, Failure> {
    let runbook = match inner.store.runbook_get(ident).await {
        Ok(runbook) => runbook,
        Err(ferric_store::StoreError::NotFound { .. }) => {
            return Err(Failure::Failed(format!(
                "Cannot clean node {}: automated cleaning runbook {ident} could not be found",
                node.uuid
            )))
        }
        Err(error) => return Err(error.into()),
    };
    if inner.config.automated_cleaning_runbook_validate_traits {
        crate::cleaning::check_runbook_approved(&runbook, node).map_err(Failure::Failed)?;
    }
    let values: Vec<Value> =
        runbook.ordered_steps().iter().map(ferric_types::RunbookStep::to_user_step).collect();
    let in_context = |failure: Failure| match failure {
        Failure::Failed(message) => Failure::Failed(format!(
            "Automated cleaning runbook {} cannot clean node {}: {message}",
            runbook.name, node.uuid
        )),
        other => other,
    };
    let steps = user_steps(&values, drivers, StepPhase::Clean).map_err(in_context)?;
    refuse_ramdisk_steps(&steps, drivers, StepPhase::Clean, runbook.disable_ramdisk)
        .map_err(in_context)?;
    tracing::info!(
        node = %node.uuid,
        runbook = %runbook.name,
        steps = steps.len(),
        "automated cleaning with a runbook"
    );
    Ok(steps)
}

/// With the ramdisk disabled (a runbook's or a request's
/// `disable_ramdisk`), no step may need it, as Ironic checks.
fn refuse_ramdisk_steps(
    steps: &[Step],
    drivers: &DriverSet,
    phase: StepPhase,
    disable_ramdisk: bool,
) -> Result<(), Failure> {
    if !disable_ramdisk {
        return Ok(());
    }
    let needing: Vec<String> = steps
        .iter()
        .filter(|step| drivers.interface(step.interface).is_some_and(|i| i.step_needs_agent(step)))
        .map(|step| format!("{}.{}", step.interface, step.step))
        .collect();
    if needing.is_empty() {
        return Ok(());
    }
    Err(Failure::Failed(format!(
        "{} step(s) {} require booting the deploy ramdisk, which is disabled",
        phase_name(phase),
        needing.join(", ")
    )))
}

async fn clean_manual(
    inner: &Inner,
    mut node: Node,
    request: &ProvisionRequest,
) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    let steps =
        user_steps(request.clean_steps.as_deref().unwrap_or(&[]), &drivers, StepPhase::Clean)?;
    let no_ramdisk = request.disable_ramdisk.unwrap_or(false);
    refuse_ramdisk_steps(&steps, &drivers, StepPhase::Clean, no_ramdisk)?;
    cache_firmware_at_start(inner, &drivers, &node).await;
    start_steps(&mut node, StepPhase::Clean, &steps);
    run_steps(inner, node, &drivers, StepPhase::Clean).await
}

async fn service(
    inner: &Inner,
    mut node: Node,
    request: &ProvisionRequest,
) -> Result<(Node, Ending), Failure> {
    let drivers = load_drivers(&node)?;
    let steps =
        user_steps(request.service_steps.as_deref().unwrap_or(&[]), &drivers, StepPhase::Service)?;
    let no_ramdisk = request.disable_ramdisk.unwrap_or(false);
    refuse_ramdisk_steps(&steps, &drivers, StepPhase::Service, no_ramdisk)?;
    cache_firmware_at_start(inner, &drivers, &node).await;
    start_steps(&mut node, StepPhase::Service, &steps);
    run_steps(inner, node, &drivers, StepPhase::Service).await
}

/// Records the firmware components the node's firmware interface reports
/// (`GET /v1/nodes/{node}/firmware`): new ones with their initial version,
/// changed ones with their new current and last flashed version.
async fn cache_firmware(
    inner: &Inner,
    interface: &dyn ferric_driver::Interface,
    node: &Node,
) -> Result<(), ferric_store::StoreError> {
    let Some(reported) = interface.firmware_components(node) else {
        return Ok(());
    };
    let known = inner.store.firmware_list(node.uuid).await?;
    let changed = ferric_types::FirmwareComponent::sync(node.uuid, &known, &reported);
    if !changed.is_empty() {
        inner.store.firmware_put(node.uuid, &changed).await?;
    }
    Ok(())
}

/// [`cache_firmware`] as cleaning or servicing starts (as Ironic does, so
/// the versions before any flash are the initial ones); a failure is only
/// logged.
async fn cache_firmware_at_start(inner: &Inner, drivers: &DriverSet, node: &Node) {
    let Some(firmware) = drivers.interface(InterfaceKind::Firmware) else {
        return;
    };
    if let Err(error) = cache_firmware(inner, firmware.as_ref(), node).await {
        tracing::warn!(node = %node.uuid, %error, "could not record firmware components");
    }
}

async fn resume_steps(inner: &Inner, node: Node) -> Result<(Node, Ending), Failure> {
    let phase = match node.provision_state {
        ProvisionState::DeployWait => StepPhase::Deploy,
        ProvisionState::CleanWait => StepPhase::Clean,
        _ => StepPhase::Service,
    };
    let drivers = load_drivers(&node)?;
    // Continue in the working state, then run the rest.
    let mut node = try_resume(inner, &node).await?.unwrap_or(node);
    let next = step_index(&node, phase).map_or(0, |index| index + 1);
    set_step_index(&mut node, phase, next);
    run_steps(inner, node, &drivers, phase).await
}

// ---------------------------------------------------------------- steps

fn steps_key(phase: StepPhase) -> &'static str {
    match phase {
        StepPhase::Deploy => "deploy_steps",
        StepPhase::Clean => "clean_steps",
        StepPhase::Service => "service_steps",
        StepPhase::Verify => "verify_steps",
    }
}

fn index_key(phase: StepPhase) -> &'static str {
    match phase {
        StepPhase::Deploy => "deploy_step_index",
        StepPhase::Clean => "clean_step_index",
        StepPhase::Service => "service_step_index",
        StepPhase::Verify => "verify_step_index",
    }
}

fn stored_steps(node: &Node, phase: StepPhase) -> Vec<Step> {
    node.driver_internal_info
        .get(steps_key(phase))
        .cloned()
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default()
}

fn step_index(node: &Node, phase: StepPhase) -> Option<usize> {
    node.driver_internal_info.get(index_key(phase)).and_then(Value::as_u64).map(|i| i as usize)
}

fn set_step_index(node: &mut Node, phase: StepPhase, index: usize) {
    node.driver_internal_info.insert(index_key(phase).into(), Value::from(index));
}

fn start_steps(node: &mut Node, phase: StepPhase, steps: &[Step]) {
    let list = serde_json::to_value(steps).unwrap_or(Value::Array(Vec::new()));
    node.driver_internal_info.insert(steps_key(phase).into(), list);
    set_step_index(node, phase, 0);
}

fn current_step_field(node: &mut Node, phase: StepPhase) -> &mut JsonObject {
    match phase {
        StepPhase::Deploy => &mut node.deploy_step,
        StepPhase::Clean | StepPhase::Verify => &mut node.clean_step,
        StepPhase::Service => &mut node.service_step,
    }
}

fn parse_step(value: &Value) -> Result<Step, Failure> {
    serde_json::from_value::<Step>(value.clone()).map_err(|error| {
        // Named, not quoted: the step's args may hold secrets, and this
        // message becomes the node's last_error.
        let name = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
        Failure::Failed(format!("Invalid step {}.{}: {error}", name("interface"), name("step")))
    })
}

/// Steps a user listed (manual clean, service): run in the given order;
/// each must exist on its interface (core steps always do).
fn user_steps(
    values: &[Value],
    drivers: &DriverSet,
    phase: StepPhase,
) -> Result<Vec<Step>, Failure> {
    let mut steps = Vec::with_capacity(values.len());
    for value in values {
        let mut step = parse_step(value)?;
        step.priority = 0;
        if !is_core_step(&step.step) {
            let interface = drivers.interface(step.interface).ok_or_else(|| {
                Failure::Failed(format!("The node has no {} interface", step.interface))
            })?;
            if !interface.accepts_step(phase, &step.step) {
                return Err(Failure::Failed(format!(
                    "No {} step \"{}\" on the {} interface of this node",
                    phase_name(phase),
                    step.step,
                    step.interface
                )));
            }
        }
        steps.push(step);
    }
    Ok(steps)
}

/// The interface that runs `step`.
fn step_interface(
    drivers: &DriverSet,
    step: &Step,
) -> Result<std::sync::Arc<dyn ferric_driver::Interface>, Failure> {
    drivers
        .interface(step.interface)
        .ok_or_else(|| Failure::Failed(format!("The node has no {} interface", step.interface)))
}

/// A step's error, saying which node, phase and step.
fn step_failed(node: &Node, phase: StepPhase, step: &Step, error: DriverError) -> Failure {
    failed(
        &format!(
            "Node {} failed {} step {}.{}",
            node.uuid,
            phase_name(phase),
            step.interface,
            step.step
        ),
        error,
    )
}

fn phase_name(phase: StepPhase) -> &'static str {
    match phase {
        StepPhase::Deploy => "deploy",
        StepPhase::Clean => "clean",
        StepPhase::Service => "service",
        StepPhase::Verify => "verify",
    }
}

fn is_core_step(name: &str) -> bool {
    matches!(name, "hold" | "wait" | "power_on" | "power_off" | "reboot")
}

/// Runs the steps stored on the node from its current index. Progress is
/// written after each step so the API shows the current step.
async fn run_steps(
    inner: &Inner,
    mut node: Node,
    drivers: &DriverSet,
    phase: StepPhase,
) -> Result<(Node, Ending), Failure> {
    let steps = stored_steps(&node, phase);
    let mut index = step_index(&node, phase).unwrap_or(0);
    while index < steps.len() {
        if *inner.shutdown.borrow() {
            return Err(Failure::Failed("The conductor shut down during the operation".into()));
        }
        let step = &steps[index];
        set_step_index(&mut node, phase, index);
        *current_step_field(&mut node, phase) = serde_json::to_value(step)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let progress = node.clone();
        record::update(&inner.store, node.uuid, |fresh| {
            record::copy_driver_fields(&progress, fresh);
            true
        })
        .await?;
        if !node.driver_internal_info.contains_key(RAMDISK_BOOTED)
            && drivers.interface(step.interface).is_some_and(|i| i.step_needs_agent(step))
        {
            let booting = std::time::Instant::now();
            boot_ramdisk(inner, &mut node, drivers, phase).await?;
            tracing::info!(
                node = %node.uuid,
                phase = phase_name(phase),
                step = %step.step,
                elapsed_ms = booting.elapsed().as_millis() as u64,
                "deploy ramdisk powered on; waiting for the agent"
            );
            return Ok((node, Ending::Event(Event::Wait)));
        }
        let step_started = std::time::Instant::now();
        let outcome = match step.step.as_str() {
            "hold" => return Ok((node, Ending::Event(Event::Hold))),
            "wait" => {
                let seconds = step.args.get("seconds").and_then(Value::as_f64);
                match seconds {
                    Some(seconds) if (0.0..=86_400.0).contains(&seconds) => {
                        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                        StepOutcome::Done
                    }
                    _ => return Ok((node, Ending::Event(Event::Hold))),
                }
            }
            "power_on" | "power_off" | "reboot" => {
                let target = match step.step.as_str() {
                    "power_on" => PowerTarget::On,
                    "power_off" => PowerTarget::Off,
                    _ => PowerTarget::Reboot,
                };
                drivers
                    .power
                    .set_power_state(&node, target, Some(inner.config.power_state_change_timeout))
                    .await
                    .map_err(|e| failed(&format!("Step {} failed", step.step), e))?;
                node.power_state = Some(target.resulting_state());
                StepOutcome::Done
            }
            _ => {
                let interface = step_interface(drivers, step)?;
                let outcome = interface
                    .execute_step(&mut node, step)
                    .await
                    .map_err(|error| step_failed(&node, phase, step, error))?;
                // What the BMC reports after a bios step is cached for
                // GET /v1/nodes/{node}/bios.
                if let Some(settings) = interface.bios_settings(&node) {
                    let settings: Vec<ferric_types::BiosSetting> = settings
                        .iter()
                        .map(|(name, value)| ferric_types::BiosSetting::new(node.uuid, name, value))
                        .collect();
                    inner.store.bios_settings_replace(node.uuid, &settings).await?;
                }
                // Likewise the firmware versions after a firmware step.
                cache_firmware(inner, interface.as_ref(), &node).await?;
                outcome
            }
        };
        tracing::info!(
            node = %node.uuid,
            phase = phase_name(phase),
            step = %step.step,
            elapsed_ms = step_started.elapsed().as_millis() as u64,
            "{}",
            if outcome == StepOutcome::Wait { "step running in the agent" } else { "step finished" }
        );
        if outcome == StepOutcome::Wait {
            return Ok((node, Ending::Event(Event::Wait)));
        }
        index += 1;
    }
    node.driver_internal_info.remove(steps_key(phase));
    node.driver_internal_info.remove(index_key(phase));
    *current_step_field(&mut node, phase) = JsonObject::new();
    if phase != StepPhase::Deploy && node.driver_internal_info.contains_key(RAMDISK_BOOTED) {
        // Cleaning or servicing ran in the ramdisk: leave the node off.
        drivers
            .power
            .set_power_state(&node, PowerTarget::Off, Some(inner.config.power_state_change_timeout))
            .await
            .map_err(|e| failed("Failed to power off after the ramdisk steps", e))?;
        node.power_state = Some(PowerState::Off);
        drivers
            .boot
            .clean_up_ramdisk(&mut node)
            .await
            .map_err(|e| failed("Failed to clean up the ramdisk boot", e))?;
        match phase {
            StepPhase::Clean => drivers.network.remove_cleaning_network(&mut node).await,
            _ => Ok(()),
        }
        .map_err(|e| failed("Failed to remove the cleaning network", e))?;
        node.driver_internal_info.remove(RAMDISK_BOOTED);
        forget_agent(&mut node);
    }
    if phase == StepPhase::Deploy {
        let drivers_power = drivers.power.clone();
        if node.power_state != Some(PowerState::On) {
            drivers_power
                .set_power_state(
                    &node,
                    PowerTarget::On,
                    Some(inner.config.power_state_change_timeout),
                )
                .await
                .map_err(|e| failed("Failed to power on the deployed node", e))?;
            node.power_state = Some(PowerState::On);
        }
    }
    Ok((node, Ending::Event(Event::Done)))
}
