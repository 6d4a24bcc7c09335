//! Tenant VIFs: which port or portgroup of a node a VIF is attached to.
//!
//! As Ironic's non-neutron network interfaces do it, the VIF id is kept in
//! the port's (or portgroup's) `internal_info.tenant_vif_port_id`. A free
//! port-like object is chosen like Ironic's `get_free_port_like_object`
//! with no physical-network constraint (there is no Neutron to ask):
//! portgroups with free member ports before ports, PXE-enabled ports first;
//! a portgroup with a VIF on one of its ports offers its other ports
//! instead.

use ferric_conductor_api::{ConductorError, VifAttach};
use ferric_types::{JsonObject, Port, Portgroup};
use uuid::Uuid;

/// Where a tenant VIF is recorded.
pub const TENANT_VIF_KEY: &str = "tenant_vif_port_id";

/// A port or a portgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Port(Uuid),
    Portgroup(Uuid),
}

fn attached(info: &JsonObject) -> Option<&str> {
    info.get(TENANT_VIF_KEY).and_then(serde_json::Value::as_str)
}

/// The VIFs attached to the node's ports and portgroups (ports first, as
/// Ironic lists them).
pub fn list(ports: &[Port], groups: &[Portgroup]) -> Vec<String> {
    ports
        .iter()
        .map(|port| &port.internal_info)
        .chain(groups.iter().map(|group| &group.internal_info))
        .filter_map(attached)
        .map(str::to_owned)
        .collect()
}

/// Chooses where to attach `vif`, or says why it cannot be attached.
pub fn choose(
    vif: &VifAttach,
    ports: &[Port],
    groups: &[Portgroup],
) -> Result<Target, ConductorError> {
    let already = |kind: &str, uuid: Uuid| {
        ConductorError::Conflict(format!(
            "Unable to attach VIF because VIF {} is already attached to Ironic {kind} {uuid}",
            vif.id
        ))
    };
    // Portgroups that have a port with some VIF: their ports are offered
    // one by one instead of the group.
    let mut unusable_groups: Vec<Option<Uuid>> = Vec::new();
    let mut free_ports: Vec<&Port> = Vec::new();
    let mut group_members: Vec<&Port> = Vec::new();
    for port in ports {
        if vif.port_uuid.is_some_and(|wanted| wanted != port.uuid) {
            continue;
        }
        match attached(&port.internal_info) {
            Some(id) if id == vif.id => return Err(already("Port", port.uuid)),
            Some(_) => {
                unusable_groups.push(port.portgroup_uuid);
                continue;
            }
            None => {}
        }
        if port.portgroup_uuid.is_none() && vif.portgroup_uuid.is_none() {
            free_ports.push(port);
        } else {
            group_members.push(port);
        }
    }
    // (is a portgroup, PXE enabled, position): the best sorts last.
    let mut candidates: Vec<((bool, bool, usize), Target)> = free_ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            ((false, port.pxe_enabled, usize::MAX - index), Target::Port(port.uuid))
        })
        .collect();
    if vif.port_uuid.is_none() {
        for (index, group) in groups.iter().enumerate() {
            if vif.portgroup_uuid.is_some_and(|wanted| wanted != group.uuid) {
                continue;
            }
            match attached(&group.internal_info) {
                Some(id) if id == vif.id => return Err(already("Portgroup", group.uuid)),
                Some(_) => continue,
                None => {}
            }
            let members = group_members.iter().filter(|p| p.portgroup_uuid == Some(group.uuid));
            if unusable_groups.contains(&Some(group.uuid)) {
                if vif.portgroup_uuid.is_none() {
                    candidates.extend(members.enumerate().map(|(i, port)| {
                        ((false, port.pxe_enabled, usize::MAX - i), Target::Port(port.uuid))
                    }));
                }
            } else if members.count() > 0 {
                candidates.push(((true, true, usize::MAX - index), Target::Portgroup(group.uuid)));
            }
        }
    }
    candidates.sort_by_key(|(key, _)| *key);
    candidates.pop().map(|(_, target)| target).ok_or_else(|| {
        ConductorError::Invalid(format!(
            "Unable to attach VIF {}, not enough free physical ports.",
            vif.id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(node: Uuid, mac: &str, pxe: bool, group: Option<Uuid>) -> Port {
        let mut port = Port::new(Uuid::new_v4(), mac.into(), node);
        port.pxe_enabled = pxe;
        port.portgroup_uuid = group;
        port
    }

    fn vif(id: &str) -> VifAttach {
        VifAttach { id: id.into(), port_uuid: None, portgroup_uuid: None }
    }

    #[test]
    fn prefers_portgroups_then_pxe_ports() {
        let node = Uuid::new_v4();
        let group = Portgroup::new(Uuid::new_v4(), node);
        let plain = port(node, "52:54:00:00:00:01", false, None);
        let pxe = port(node, "52:54:00:00:00:02", true, None);
        let member = port(node, "52:54:00:00:00:03", true, Some(group.uuid));
        let ports = vec![plain.clone(), pxe.clone(), member.clone()];
        let groups = vec![group.clone()];
        assert_eq!(choose(&vif("a"), &ports, &groups).ok(), Some(Target::Portgroup(group.uuid)));
        assert_eq!(choose(&vif("a"), &ports, &[]).ok(), Some(Target::Port(pxe.uuid)));
        // An explicit port or portgroup wins.
        let to_plain = VifAttach { port_uuid: Some(plain.uuid), ..vif("a") };
        assert_eq!(choose(&to_plain, &ports, &groups).ok(), Some(Target::Port(plain.uuid)));
        let to_group = VifAttach { portgroup_uuid: Some(group.uuid), ..vif("a") };
        assert_eq!(choose(&to_group, &ports, &groups).ok(), Some(Target::Portgroup(group.uuid)));
    }

    #[test]
    fn refuses_duplicates_and_full_nodes() {
        let node = Uuid::new_v4();
        let mut taken = port(node, "52:54:00:00:00:01", true, None);
        taken.internal_info.insert(TENANT_VIF_KEY.into(), "a".into());
        let ports = vec![taken];
        assert!(matches!(choose(&vif("a"), &ports, &[]), Err(ConductorError::Conflict(_))));
        assert!(matches!(choose(&vif("b"), &ports, &[]), Err(ConductorError::Invalid(_))));
        assert_eq!(list(&ports, &[]), ["a"]);
    }
}
