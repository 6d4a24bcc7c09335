//! Every provision verb end to end on `fake-hardware`, over real HTTP on
//! SQLite and PostgreSQL: manage, provide, inspect, deploy, rebuild,
//! undeploy, rescue/unrescue, service, adopt, manual clean, hold/unhold
//! and abort, with each verb's argument rules and microversion.

#![allow(clippy::unwrap_used)]

use ferric_test_utils::{for_each_backend, TestContext};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A fake-hardware node whose optional interfaces are all `fake`.
async fn fake_node(ctx: &TestContext, name: &str) -> String {
    let reply = ctx
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": name, "inspect_interface": "fake",
                   "rescue_interface": "fake", "bios_interface": "fake", "raid_interface": "fake"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["uuid"].as_str().unwrap().to_owned()
}

/// Requests `body` at `version` and waits for the node to settle.
async fn act(ctx: &TestContext, node: &str, version: &str, body: Value) -> Value {
    let path = format!("/v1/nodes/{node}/states/provision");
    let reply = ctx.request(Method::PUT, &path, Some(version), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{body}: {:?}", reply.body);
    assert_eq!(
        reply.header("location"),
        Some(format!("{}/v1/nodes/{node}/states", ctx.base).as_str())
    );
    ctx.wait_until_idle(node).await
}

async fn refused(
    ctx: &TestContext,
    node: &str,
    version: &str,
    body: Value,
) -> (StatusCode, String) {
    let path = format!("/v1/nodes/{node}/states/provision");
    let reply = ctx.request(Method::PUT, &path, Some(version), Some(body)).await;
    (reply.status, reply.fault())
}

fn state(node: &Value) -> &str {
    node["provision_state"].as_str().unwrap_or("")
}

#[tokio::test]
async fn lifecycle_verbs() {
    for_each_backend(|ctx| async move {
        let node = fake_node(&ctx, "verbs-life").await;
        let managed = act(&ctx, &node, "latest", json!({"target": "manage"})).await;
        assert_eq!(state(&managed), "manageable", "{managed}");
        let inspected = act(&ctx, &node, "latest", json!({"target": "inspect"})).await;
        assert_eq!(state(&inspected), "manageable", "{inspected}");
        assert!(inspected["inspection_finished_at"].is_string(), "{inspected}");
        let available = act(&ctx, &node, "latest", json!({"target": "provide"})).await;
        assert_eq!(state(&available), "available", "{available}");

        let active = act(&ctx, &node, "latest", json!({"target": "active"})).await;
        assert_eq!(state(&active), "active", "{active}");
        assert_eq!(active["power_state"], "power on");
        assert!(active["last_error"].is_null());
        let rebuilt = act(&ctx, &node, "latest", json!({"target": "rebuild"})).await;
        assert_eq!(state(&rebuilt), "active", "{rebuilt}");

        // rescue needs a password (1.38).
        let (status, fault) = refused(&ctx, &node, "latest", json!({"target": "rescue"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(fault.contains("rescue_password"), "{fault}");
        let (status, _) =
            refused(&ctx, &node, "latest", json!({"target": "rescue", "rescue_password": " "}))
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) =
            refused(&ctx, &node, "1.37", json!({"target": "rescue", "rescue_password": "secret"}))
                .await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let rescued =
            act(&ctx, &node, "1.38", json!({"target": "rescue", "rescue_password": "secret"}))
                .await;
        assert_eq!(state(&rescued), "rescue", "{rescued}");
        let unrescued = act(&ctx, &node, "latest", json!({"target": "unrescue"})).await;
        assert_eq!(state(&unrescued), "active", "{unrescued}");

        // service (1.87) with service steps, back to active.
        let steps = json!([{"interface": "bios", "step": "apply_configuration",
                            "args": {"settings": [{"name": "Turbo", "value": "On"}]}}]);
        let (status, _) =
            refused(&ctx, &node, "1.86", json!({"target": "service", "service_steps": steps}))
                .await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let (status, fault) = refused(&ctx, &node, "latest", json!({"target": "service"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(fault.contains("service_steps"), "{fault}");
        let serviced =
            act(&ctx, &node, "1.87", json!({"target": "service", "service_steps": steps})).await;
        assert_eq!(state(&serviced), "active", "{serviced}");
        let bios = ctx.get(&format!("/v1/nodes/{node}/bios/Turbo")).await;
        assert_eq!(bios.body["Turbo"]["value"], "On", "{:?}", bios.body);

        // Undeploy with both names: deleted, and undeploy (1.73).
        let cleaned = act(&ctx, &node, "latest", json!({"target": "deleted"})).await;
        assert_eq!(state(&cleaned), "available", "{cleaned}");
        act(&ctx, &node, "latest", json!({"target": "deploy"})).await;
        let (status, _) = refused(&ctx, &node, "1.72", json!({"target": "undeploy"})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let cleaned = act(&ctx, &node, "1.73", json!({"target": "undeploy"})).await;
        assert_eq!(state(&cleaned), "available", "{cleaned}");
        assert_eq!(cleaned["power_state"], "power off");

        // An illegal verb for the state.
        let (status, fault) = refused(&ctx, &node, "latest", json!({"target": "unrescue"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fault}");
        ctx
    })
    .await;
}

#[tokio::test]
async fn adopt_and_manual_clean() {
    for_each_backend(|ctx| async move {
        let node = fake_node(&ctx, "verbs-adopt").await;
        act(&ctx, &node, "latest", json!({"target": "manage"})).await;
        let (status, _) = refused(&ctx, &node, "1.16", json!({"target": "adopt"})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let adopted = act(&ctx, &node, "1.17", json!({"target": "adopt"})).await;
        assert_eq!(state(&adopted), "active", "{adopted}");

        let other = fake_node(&ctx, "verbs-clean").await;
        act(&ctx, &other, "latest", json!({"target": "manage"})).await;
        let (status, fault) = refused(&ctx, &other, "latest", json!({"target": "clean"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(fault.contains("clean_steps"), "{fault}");
        let steps = json!([{"interface": "raid", "step": "create_configuration", "args": {}},
                           {"interface": "deploy", "step": "erase_devices_metadata"}]);
        let (status, _) =
            refused(&ctx, &other, "1.14", json!({"target": "clean", "clean_steps": steps})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let cleaned =
            act(&ctx, &other, "1.15", json!({"target": "clean", "clean_steps": steps})).await;
        assert_eq!(state(&cleaned), "manageable", "{cleaned}");
        assert!(cleaned["clean_step"].as_object().unwrap().is_empty(), "{cleaned}");
        let (status, fault) = refused(
            &ctx,
            &other,
            "latest",
            json!({"target": "clean", "clean_steps": [{"interface": "boot", "step": "x"}]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(fault.contains("Invalid interface \"boot\""), "{fault}");
        ctx
    })
    .await;
}

#[tokio::test]
async fn hold_unhold_and_abort() {
    for_each_backend(|ctx| async move {
        let node = fake_node(&ctx, "verbs-hold").await;
        act(&ctx, &node, "latest", json!({"target": "manage"})).await;
        let steps = json!([{"interface": "deploy", "step": "hold"},
                           {"interface": "deploy", "step": "wait", "args": {"seconds": 0.1}}]);
        let held = act(&ctx, &node, "latest", json!({"target": "clean", "clean_steps": steps})).await;
        assert_eq!(state(&held), "clean hold", "{held}");
        let (status, _) = refused(&ctx, &node, "1.84", json!({"target": "unhold"})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let resumed = act(&ctx, &node, "1.85", json!({"target": "unhold"})).await;
        assert_eq!(state(&resumed), "manageable", "{resumed}");

        // Abort a held cleaning.
        let held = act(&ctx, &node, "latest", json!({"target": "clean", "clean_steps": steps})).await;
        assert_eq!(state(&held), "clean hold", "{held}");
        let aborted = act(&ctx, &node, "latest", json!({"target": "abort"})).await;
        assert_eq!(state(&aborted), "clean failed", "{aborted}");
        act(&ctx, &node, "latest", json!({"target": "manage"})).await;

        // Servicing holds too.
        act(&ctx, &node, "latest", json!({"target": "provide"})).await;
        act(&ctx, &node, "latest", json!({"target": "active"})).await;
        let held = act(&ctx, &node, "latest",
            json!({"target": "service", "service_steps": [{"interface": "deploy", "step": "hold"}]})).await;
        assert_eq!(state(&held), "service hold", "{held}");
        let resumed = act(&ctx, &node, "latest", json!({"target": "unhold"})).await;
        assert_eq!(state(&resumed), "active", "{resumed}");

        // Abort while waiting for the ramdisk agent (direct deploy, no agent
        // ever calls back): automated cleaning waits in "clean wait".
        let waiting = fake_node(&ctx, "verbs-abort").await;
        let reply = ctx
            .patch(
                &format!("/v1/nodes/{waiting}"),
                json!([{"op": "replace", "path": "/deploy_interface", "value": "direct"},
                       {"op": "add", "path": "/instance_info",
                        "value": {"image_source": "http://images/disk.img",
                                  "image_checksum": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        act(&ctx, &waiting, "latest", json!({"target": "manage"})).await;
        let wait = act(&ctx, &waiting, "latest", json!({"target": "provide"})).await;
        assert_eq!(state(&wait), "clean wait", "{wait}");
        let (status, _) = refused(&ctx, &waiting, "1.12", json!({"target": "abort"})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let aborted = act(&ctx, &waiting, "1.13", json!({"target": "abort"})).await;
        assert_eq!(state(&aborted), "clean failed", "{aborted}");
        assert!(aborted["driver_internal_info"].get("clean_steps").is_none(), "{aborted}");
        // Without automated cleaning the deploy itself waits ("wait call-back").
        act(&ctx, &waiting, "latest", json!({"target": "manage"})).await;
        let reply = ctx
            .patch(
                &format!("/v1/nodes/{waiting}"),
                json!([{"op": "replace", "path": "/automated_clean", "value": false}]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        act(&ctx, &waiting, "latest", json!({"target": "provide"})).await;
        let wait = act(&ctx, &waiting, "latest", json!({"target": "active"})).await;
        assert_eq!(state(&wait), "wait call-back", "{wait}");
        let (status, _) = refused(&ctx, &waiting, "1.109", json!({"target": "abort"})).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "abort in wait call-back needs 1.110");
        let aborted = act(&ctx, &waiting, "1.110", json!({"target": "abort"})).await;
        assert_eq!(state(&aborted), "deploy failed", "{aborted}");
        assert!(aborted["last_error"].as_str().unwrap_or("").contains("abort"), "{aborted}");
        ctx
    })
    .await;
}
