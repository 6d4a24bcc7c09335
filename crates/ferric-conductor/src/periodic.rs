//! The conductor's loops: taking work, heartbeating, sweeping (wait-state
//! timeouts, nodes orphaned by dead conductors) and syncing power states.

use std::sync::Arc;
use std::time::Duration;

use ferric_driver::DriverSet;
use ferric_store::{NodeFilters, NodeQuery, Page, StoreError};
use ferric_types::{
    apply_event, Event, Fault, Node, PendingAction, PowerTarget, ProvisionState, Severity,
    Timestamp,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{ops, record, Inner};

/// Starts a task for `uuid` unless one runs already.
fn spawn_task(inner: &Arc<Inner>, uuid: Uuid) {
    {
        let Ok(mut running) = inner.running.lock() else { return };
        if !running.insert(uuid) {
            return;
        }
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        let permit = inner.workers.clone().acquire_owned().await;
        if permit.is_ok() {
            ops::run(inner.clone(), uuid).await;
        }
        if let Ok(mut running) = inner.running.lock() {
            running.remove(&uuid);
        }
        // Work may have been queued while we ran (and its wake-up skipped).
        if let Ok(node) = inner.store.node_get_by_uuid(uuid).await {
            if node.reservation.as_deref() == Some(inner.config.hostname.as_str())
                && node.pending_action.is_some()
                && !*inner.shutdown.borrow()
            {
                spawn_task(&inner, uuid);
            }
        }
    });
}

/// Takes work: immediately on a wake-up, and by polling for work queued by
/// API servers in other processes.
pub(crate) async fn work_loop(inner: Arc<Inner>, mut wake: mpsc::UnboundedReceiver<Uuid>) {
    let mut shutdown = inner.shutdown.clone();
    let mut poll = tokio::time::interval(inner.config.poll_interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            received = wake.recv() => match received {
                Some(uuid) => {
                    if !*inner.shutdown.borrow() {
                        spawn_task(&inner, uuid);
                    }
                }
                None => return,
            },
            _ = poll.tick() => {
                if *inner.shutdown.borrow() {
                    return;
                }
                let query = NodeQuery {
                    filters: NodeFilters {
                        reservation: Some(Some(inner.config.hostname.clone())),
                        has_pending_action: Some(true),
                        ..NodeFilters::default()
                    },
                    ..NodeQuery::default()
                };
                match inner.store.node_list(&query).await {
                    Ok(nodes) => nodes.iter().for_each(|node| spawn_task(&inner, node.uuid)),
                    Err(error) => tracing::warn!(%error, "polling for work failed"),
                }
            }
        }
    }
}

pub(crate) async fn heartbeat_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut tick = tokio::time::interval(inner.config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if let Err(error) = inner.store.conductor_heartbeat(&inner.config.hostname).await {
                    tracing::warn!(%error, "conductor heartbeat failed");
                }
            }
        }
    }
}

pub(crate) async fn sweep_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut tick = tokio::time::interval(inner.config.sweep_interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => sweep_once(&inner).await,
        }
    }
}

pub(crate) async fn power_sync_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut tick = tokio::time::interval(inner.config.power_sync_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => power_sync_once(&inner).await,
        }
    }
}

/// Fails `node`'s interrupted operation: the conductor that held it is
/// gone. Power actions are cleared; provision operations in a working state
/// get `fail`; everything else is released as is.
fn fail_interrupted(node: &mut Node, previous_holder: &str) -> bool {
    let reason = format!(
        "The conductor {previous_holder} stopped while this operation was in progress; \
         the operation was not completed"
    );
    match node.pending_action.take() {
        Some(PendingAction::Power { .. }) => {
            node.target_power_state = None;
            node.last_error = Some(reason);
        }
        Some(PendingAction::Provision(_) | PendingAction::AgentCallback) | None => {
            if node.provision_state.is_working() {
                if let Ok(transition) =
                    apply_event(node.provision_state, Event::Fail, node.target_provision_state)
                {
                    node.provision_state = transition.to;
                    node.target_provision_state = transition.target;
                    node.provision_updated_at = Some(Timestamp::now());
                    node.last_error = Some(reason);
                }
            }
        }
    }
    node.target_power_state = None;
    node.reservation = None;
    true
}

/// At start-up nothing runs here, so every node still reserved by this
/// hostname was interrupted by a crash or kill: fail and release them.
pub(crate) async fn recover_own_nodes(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let host = inner.config.hostname.clone();
    let query = NodeQuery {
        filters: NodeFilters { reservation: Some(Some(host.clone())), ..NodeFilters::default() },
        ..NodeQuery::default()
    };
    for node in inner.store.node_list(&query).await? {
        recover(inner, node.uuid, &host).await?;
    }
    // A working state with nobody holding the lock cannot make progress.
    let query = NodeQuery {
        filters: NodeFilters {
            reservation: Some(None),
            provision_states: Some(
                ProvisionState::ALL.into_iter().filter(|state| state.is_working()).collect(),
            ),
            ..NodeFilters::default()
        },
        ..NodeQuery::default()
    };
    for node in inner.store.node_list(&query).await? {
        // `cleaning` without a lock is the hand-over from undeploy to
        // automated cleaning, interrupted: queue the cleaning again.
        if node.provision_state == ProvisionState::Cleaning {
            let request = ferric_types::ProvisionRequest {
                verb: Some(ferric_types::Verb::Provide),
                ..Default::default()
            };
            record::update(&inner.store, node.uuid, |fresh| {
                if fresh.reservation.is_some() || fresh.provision_state != ProvisionState::Cleaning
                {
                    return false;
                }
                fresh.reservation = Some(host.clone());
                fresh.pending_action = Some(PendingAction::Provision(request.clone()));
                true
            })
            .await?;
            continue;
        }
        recover(inner, node.uuid, "(none)").await?;
    }
    Ok(())
}

async fn recover(inner: &Arc<Inner>, uuid: Uuid, holder: &str) -> Result<(), StoreError> {
    let host = inner.config.hostname.clone();
    let holder = holder.to_owned();
    let recovered = record::update(&inner.store, uuid, |node| {
        let held_by_holder = match node.reservation.as_deref() {
            Some(current) => current == holder,
            None => holder == "(none)",
        };
        held_by_holder && fail_interrupted(node, &holder)
    })
    .await?;
    if let Some(node) = recovered {
        tracing::warn!(node = %uuid, state = %node.provision_state, "recovered an interrupted operation");
        let message = node.last_error.clone().unwrap_or_default();
        record::history(&inner.store, &node, &host, Severity::Error, "conductor", &message).await;
    }
    Ok(())
}

/// One sweep: wait-state timeouts and nodes held by dead conductors.
pub(crate) async fn sweep_once(inner: &Arc<Inner>) {
    if let Err(error) = sweep_timeouts(inner).await {
        tracing::warn!(%error, "checking wait-state timeouts failed");
    }
    if let Err(error) = sweep_orphans(inner).await {
        tracing::warn!(%error, "checking for orphaned nodes failed");
    }
}

fn timeout_for(inner: &Inner, state: ProvisionState) -> Option<Duration> {
    let config = &inner.config;
    match state {
        ProvisionState::DeployWait => Some(config.deploy_callback_timeout),
        ProvisionState::CleanWait => Some(config.clean_callback_timeout),
        ProvisionState::InspectWait => Some(config.inspect_wait_timeout),
        ProvisionState::RescueWait => Some(config.rescue_callback_timeout),
        ProvisionState::ServiceWait => Some(config.service_callback_timeout),
        _ => None,
    }
}

async fn sweep_timeouts(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let host = inner.config.hostname.clone();
    for state in [
        ProvisionState::DeployWait,
        ProvisionState::CleanWait,
        ProvisionState::InspectWait,
        ProvisionState::RescueWait,
        ProvisionState::ServiceWait,
    ] {
        let Some(timeout) = timeout_for(inner, state) else { continue };
        let seconds = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
        let query = NodeQuery {
            filters: NodeFilters {
                provision_state: Some(state),
                reservation: Some(None),
                provision_updated_before: Some(Timestamp::now().plus_seconds(-seconds)),
                conductor_group: Some(inner.config.conductor_group.clone()),
                ..NodeFilters::default()
            },
            page: Page { limit: Some(500), ..Page::default() },
            ..NodeQuery::default()
        };
        for node in inner.store.node_list(&query).await? {
            let message = format!(
                "Timeout reached while waiting for callback for node {} in state \"{}\" \
                 (waited more than {} s)",
                node.uuid,
                state,
                timeout.as_secs()
            );
            let updated = record::update(&inner.store, node.uuid, |fresh| {
                if fresh.provision_state != state || fresh.reservation.is_some() {
                    return false;
                }
                let Ok(transition) = apply_event(state, Event::Fail, fresh.target_provision_state)
                else {
                    return false;
                };
                fresh.provision_state = transition.to;
                fresh.target_provision_state = transition.target;
                fresh.provision_updated_at = Some(Timestamp::now());
                fresh.last_error = Some(message.clone());
                if transition.to == ProvisionState::CleanFailed {
                    fresh.maintenance = true;
                    fresh.fault = Some(Fault::CleanFailure);
                    fresh.maintenance_reason = Some(message.clone());
                }
                if fresh.driver_internal_info.remove("ramdisk_booted").is_some() {
                    // Don't leave a silent ramdisk running: power it off,
                    // as work for this conductor recorded in this write.
                    fresh.driver_internal_info.remove("agent_wait_for_callback");
                    fresh.reservation = Some(host.clone());
                    fresh.target_power_state = Some(PowerTarget::Off);
                    fresh.pending_action = Some(PendingAction::Power {
                        target: PowerTarget::Off,
                        timeout_seconds: None,
                    });
                }
                true
            })
            .await?;
            if let Some(node) = updated {
                if node.pending_action.is_some() {
                    spawn_task(inner, node.uuid);
                }
                record::history(
                    &inner.store,
                    &node,
                    &host,
                    Severity::Error,
                    "provisioning",
                    &message,
                )
                .await;
            }
        }
    }
    Ok(())
}

/// Nodes reserved by conductors that stopped heartbeating.
async fn sweep_orphans(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let conductors = inner.store.conductor_list(None, None).await?;
    let timeout = i64::try_from(inner.config.heartbeat_timeout.as_secs()).unwrap_or(i64::MAX);
    let now = Timestamp::now();
    let alive: Vec<String> = conductors
        .iter()
        .filter(|c| c.online && c.updated_at.unwrap_or(c.created_at).plus_seconds(timeout) > now)
        .map(|c| c.hostname.clone())
        .collect();
    let mut keep = alive.clone();
    keep.push(inner.config.hostname.clone());
    let query = NodeQuery {
        filters: NodeFilters { reserved_by_none_of: Some(keep), ..NodeFilters::default() },
        ..NodeQuery::default()
    };
    for node in inner.store.node_list(&query).await? {
        if let Some(holder) = node.reservation.clone() {
            recover(inner, node.uuid, &holder).await?;
        }
    }
    Ok(())
}

/// Reads every eligible node's power state from its driver and records
/// changes; repeated failures put the node into maintenance, and a node in
/// maintenance for a power failure leaves it once its BMC answers again.
pub(crate) async fn power_sync_once(inner: &Arc<Inner>) {
    let query = NodeQuery {
        filters: NodeFilters {
            reservation: Some(None),
            conductor_group: Some(inner.config.conductor_group.clone()),
            ..NodeFilters::default()
        },
        ..NodeQuery::default()
    };
    let nodes = match inner.store.node_list(&query).await {
        Ok(nodes) => nodes,
        Err(error) => {
            tracing::warn!(%error, "power sync could not list nodes");
            return;
        }
    };
    let eligible = nodes.into_iter().filter(|node| {
        node.provision_state != ProvisionState::Enroll
            && (!node.maintenance || node.fault == Some(Fault::PowerFailure))
    });
    futures::stream::iter(eligible)
        .for_each_concurrent(inner.config.power_sync_concurrency.max(1), |node| {
            let inner = inner.clone();
            async move { sync_one(&inner, node).await }
        })
        .await;
}

async fn sync_one(inner: &Arc<Inner>, node: Node) {
    let host = inner.config.hostname.clone();
    let observed = match DriverSet::load(&node) {
        Ok(drivers) => drivers.power.get_power_state(&node).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match observed {
        Ok(state) => {
            if let Ok(mut failures) = inner.power_failures.lock() {
                failures.remove(&node.uuid);
            }
            let recovered = node.fault == Some(Fault::PowerFailure);
            if node.power_state == Some(state) && !recovered {
                return;
            }
            let result = record::update(&inner.store, node.uuid, |fresh| {
                if fresh.reservation.is_some() {
                    return false;
                }
                fresh.power_state = Some(state);
                if fresh.fault == Some(Fault::PowerFailure) {
                    fresh.maintenance = false;
                    fresh.maintenance_reason = None;
                    fresh.fault = None;
                    fresh.last_error = None;
                }
                true
            })
            .await;
            if let Ok(Some(stored)) = result {
                let message = if recovered {
                    format!("Power state recovered: the BMC answers again ({state})")
                } else {
                    format!(
                        "Power state changed outside ferric from {} to {state}",
                        node.power_state.map_or("unknown", |s| s.as_str())
                    )
                };
                record::history(&inner.store, &stored, &host, Severity::Warning, "power", &message)
                    .await;
            }
        }
        Err(error) => {
            let count = match inner.power_failures.lock() {
                Ok(mut failures) => {
                    let count = failures.entry(node.uuid).or_insert(0);
                    *count += 1;
                    *count
                }
                Err(_) => return,
            };
            tracing::warn!(node = %node.uuid, count, %error, "reading the power state failed");
            if count < inner.config.power_sync_max_failures || node.maintenance {
                return;
            }
            let message = format!(
                "Reading the power state failed {count} times in a row; the node is in \
                 maintenance until its BMC answers again. Last error: {error}"
            );
            let result = record::update(&inner.store, node.uuid, |fresh| {
                if fresh.reservation.is_some() || fresh.maintenance {
                    return false;
                }
                fresh.power_state = None;
                fresh.maintenance = true;
                fresh.fault = Some(Fault::PowerFailure);
                fresh.maintenance_reason = Some(message.clone());
                fresh.last_error = Some(message.clone());
                true
            })
            .await;
            if let Ok(Some(stored)) = result {
                record::history(&inner.store, &stored, &host, Severity::Error, "power", &message)
                    .await;
            }
        }
    }
}
