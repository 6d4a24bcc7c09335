//! `GET /` and `GET /v1`: the version documents clients discover us by.

use axum::Json;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::version::{MAX_VERSION, MIN_VERSION};

fn version_object(ctx: &Ctx) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{}/v1/", ctx.base_url), "rel": "self"}],
        "status": "CURRENT",
        "min_version": MIN_VERSION,
        "version": MAX_VERSION,
    })
}

pub async fn root(ctx: Ctx) -> Json<Value> {
    let version = version_object(&ctx);
    Json(json!({
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision and management \
                        of baremetal machines. This one is ferric.",
        "default_version": version,
        "versions": [version],
    }))
}

pub async fn v1(ctx: Ctx) -> Json<Value> {
    let mut body = json!({
        "id": "v1",
        "links": [
            {"href": format!("{}/v1/", ctx.base_url), "rel": "self"},
            {"href": "https://docs.openstack.org/ironic/latest/contributor/webapi.html",
             "rel": "describedby", "type": "text/html"},
        ],
        "media_types": {"base": "application/json",
                        "type": "application/vnd.openstack.ironic.v1+json"},
        "version": version_object(&ctx),
    });
    let resources: &[(&str, u16)] = &[
        ("chassis", 1),
        ("nodes", 1),
        ("ports", 1),
        ("drivers", 1),
        ("lookup", 22),
        ("heartbeat", 22),
        ("portgroups", 23),
        ("volume", 32),
        ("conductors", 49),
        ("allocations", 52),
        ("events", 54),
        ("deploy_templates", 55),
        ("shards", 82),
        ("inspection_rules", 96),
        ("runbooks", 92),
    ];
    if let Some(map) = body.as_object_mut() {
        for &(name, minor) in resources {
            if ctx.version.at_least(minor) {
                map.insert(name.into(), ctx.links(name));
            }
        }
    }
    Json(body)
}
