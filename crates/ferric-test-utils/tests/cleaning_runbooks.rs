//! Automated cleaning with a runbook (`[conductor]
//! automated_cleaning_step_source` = `runbook` or `hybrid`), over real HTTP
//! on SQLite and PostgreSQL: the runbook for the node (its own, its resource
//! class's, or the global one) runs in place of the drivers' automated clean
//! steps on provide and after undeploy; a runbook that is missing or not
//! approved by the node's traits fails cleaning.
//!
//! Steps are observed through fake-hardware's BIOS interface (what
//! `bios.apply_configuration` sets shows in `GET /v1/nodes/{node}/bios`)
//! and through `deploy.hold`, which stops cleaning in `clean hold` with the
//! step list visible.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;

use ferric_conductor::{CleanStepSource, ConductorConfig};
use ferric_test_utils::{test_conductor_config, Backend, TestContext};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Runs `test` on each backend with a conductor configured by `config`.
async fn with_config<F, Fut>(config: ConductorConfig, test: F)
where
    F: Fn(TestContext) -> Fut,
    Fut: Future<Output = TestContext>,
{
    for backend in [Backend::Sqlite, Backend::Postgres] {
        match TestContext::start_with(backend, config.clone()).await {
            Some(context) => test(context).await.stop().await,
            None => eprintln!("skipping the {backend:?} run: database unavailable"),
        }
    }
}

fn config(
    source: CleanStepSource,
    global: Option<&str>,
    by_class: &[(&str, &str)],
) -> ConductorConfig {
    ConductorConfig {
        automated_cleaning_step_source: source,
        automated_cleaning_runbook: global.map(str::to_owned),
        automated_cleaning_runbook_by_resource_class: by_class
            .iter()
            .map(|(class, runbook)| (class.to_string(), runbook.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..test_conductor_config()
    }
}

/// A runbook (named as a trait, so it approves nodes with that trait)
/// whose one step sets the BIOS setting `Marker` to `marker`.
async fn marker_runbook(ctx: &TestContext, name: &str, marker: &str) {
    let reply = ctx
        .request(
            reqwest::Method::POST,
            "/v1/runbooks",
            Some("1.92"),
            Some(json!({"name": name, "steps": [{"interface": "bios",
                "step": "apply_configuration", "order": 1,
                "args": {"settings": [{"name": "Marker", "value": marker}]}}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// A manageable fake-hardware node with the fake BIOS interface.
async fn manageable(ctx: &TestContext, name: &str, extra: Value) {
    let mut body = json!({"driver": "fake-hardware", "name": name, "bios_interface": "fake"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let reply = ctx.post("/v1/nodes", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(ctx.provision(name, "manage").await["provision_state"], "manageable");
}

async fn set_traits(ctx: &TestContext, node: &str, traits: Value) {
    let reply = ctx.put(&format!("/v1/nodes/{node}/traits"), json!({ "traits": traits })).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
}

/// The node's cached BIOS `Marker` setting, if any.
async fn marker(ctx: &TestContext, node: &str) -> Option<String> {
    let reply = ctx.get(&format!("/v1/nodes/{node}/bios")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["bios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|setting| setting["name"] == "Marker")
        .map(|setting| setting["value"].as_str().unwrap().to_owned())
}

fn step_names(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}.{}", s["interface"].as_str().unwrap(), s["step"].as_str().unwrap()))
        .collect()
}

/// Asserts the node failed cleaning with `needle` in its error, and went
/// into maintenance for it.
fn assert_clean_failed(node: &Value, needle: &str) {
    assert_eq!(node["provision_state"], "clean failed", "{node}");
    let error = node["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "expected {needle:?} in {error:?}");
    assert_eq!(node["maintenance"], true, "{node}");
    assert_eq!(node["fault"], "clean failure", "{node}");
}

#[tokio::test]
async fn global_runbook_cleans_on_provide_and_after_undeploy() {
    let config = config(CleanStepSource::Hybrid, Some("CUSTOM_SCRUB"), &[]);
    with_config(config, |ctx| async move {
        // Listed out of order: the runbook's `order` decides.
        let book = json!({"name": "CUSTOM_SCRUB", "steps": [
            {"interface": "deploy", "step": "hold", "order": 20},
            {"interface": "bios", "step": "apply_configuration", "order": 10,
             "args": {"settings": [{"name": "Marker", "value": "scrubbed"}]}}]});
        let created =
            ctx.request(reqwest::Method::POST, "/v1/runbooks", Some("1.92"), Some(book)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        manageable(&ctx, "n1", json!({})).await;
        set_traits(&ctx, "n1", json!(["CUSTOM_SCRUB"])).await;

        let held = ctx.provision("n1", "provide").await;
        assert_eq!(held["provision_state"], "clean hold", "{held}");
        assert_eq!(held["target_provision_state"], "available", "{held}");
        assert_eq!(
            step_names(&held["driver_internal_info"]["clean_steps"]),
            ["bios.apply_configuration", "deploy.hold"]
        );
        assert_eq!(marker(&ctx, "n1").await.as_deref(), Some("scrubbed"));
        let available = ctx.provision("n1", "unhold").await;
        assert_eq!(available["provision_state"], "available", "{available}");
        assert_eq!(available["last_error"], Value::Null);

        // Undeploy cleans with the runbook too.
        assert_eq!(ctx.provision("n1", "active").await["provision_state"], "active");
        let held = ctx.provision("n1", "deleted").await;
        assert_eq!(held["provision_state"], "clean hold", "{held}");
        assert_eq!(ctx.provision("n1", "unhold").await["provision_state"], "available");

        // A node without the runbook's trait is not cleaned by it.
        manageable(&ctx, "n2", json!({})).await;
        let failed = ctx.provision("n2", "provide").await;
        assert_clean_failed(&failed, "the node has none of the runbook's traits (CUSTOM_SCRUB)");
        assert_eq!(marker(&ctx, "n2").await, None);
        ctx
    })
    .await;
}

#[tokio::test]
async fn node_then_resource_class_then_global() {
    let mut config = config(
        CleanStepSource::Hybrid,
        Some("CUSTOM_GLOBAL"),
        &[("gpu", "CUSTOM_GPU"), ("bare", "")],
    );
    config.automated_cleaning_runbook_from_node = true;
    with_config(config, |ctx| async move {
        marker_runbook(&ctx, "CUSTOM_GLOBAL", "global").await;
        marker_runbook(&ctx, "CUSTOM_GPU", "gpu").await;
        marker_runbook(&ctx, "CUSTOM_OWN", "own").await;
        let all = json!(["CUSTOM_GLOBAL", "CUSTOM_GPU", "CUSTOM_OWN"]);
        let nodes = [
            ("plain", json!({}), Some("global")),
            ("other-class", json!({"resource_class": "cpu"}), Some("global")),
            ("gpu", json!({"resource_class": "gpu"}), Some("gpu")),
            // By UUID would do as well; the node's own choice wins.
            (
                "own",
                json!({"resource_class": "gpu", "driver_info": {"cleaning_runbook": "CUSTOM_OWN"}}),
                Some("own"),
            ),
            // An empty choice for the class: hybrid falls back to the
            // drivers' steps (fake-hardware has no automated ones).
            ("bare", json!({"resource_class": "bare"}), None),
        ];
        for (name, extra, expected) in nodes {
            manageable(&ctx, name, extra).await;
            set_traits(&ctx, name, all.clone()).await;
            let node = ctx.provision(name, "provide").await;
            assert_eq!(node["provision_state"], "available", "{name}: {node}");
            assert_eq!(marker(&ctx, name).await.as_deref(), expected, "{name}");
        }
        ctx
    })
    .await;
}

#[tokio::test]
async fn missing_runbooks_fail_cleaning() {
    let config = config(CleanStepSource::Runbook, Some("CUSTOM_NOWHERE"), &[("bare", "")]);
    with_config(config, |ctx| async move {
        manageable(&ctx, "lost", json!({})).await;
        set_traits(&ctx, "lost", json!(["CUSTOM_NOWHERE"])).await;
        let failed = ctx.provision("lost", "provide").await;
        assert_clean_failed(
            &failed,
            "automated cleaning runbook CUSTOM_NOWHERE could not be found",
        );

        // `runbook` (unlike `hybrid`) needs one for every node.
        manageable(&ctx, "bare", json!({"resource_class": "bare"})).await;
        let failed = ctx.provision("bare", "provide").await;
        assert_clean_failed(&failed, "automated cleaning requires a runbook");
        ctx
    })
    .await;
}

#[tokio::test]
async fn trait_checks_off_and_the_default_source() {
    // Without the trait check, any node is cleaned by the runbook.
    let mut unchecked = config(CleanStepSource::Runbook, Some("CUSTOM_SCRUB"), &[]);
    unchecked.automated_cleaning_runbook_validate_traits = false;
    unchecked.automated_cleaning_runbook_from_node = true;
    with_config(unchecked, |ctx| async move {
        marker_runbook(&ctx, "CUSTOM_SCRUB", "scrubbed").await;
        manageable(&ctx, "n", json!({})).await;
        assert_eq!(ctx.provision("n", "provide").await["provision_state"], "available");
        assert_eq!(marker(&ctx, "n").await.as_deref(), Some("scrubbed"));

        // A runbook that disables the ramdisk runs its out-of-band steps.
        let created = ctx
            .request(
                reqwest::Method::PATCH,
                "/v1/runbooks/CUSTOM_SCRUB",
                Some("1.92"),
                Some(json!([{"op": "replace", "path": "/disable_ramdisk", "value": true}])),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
        assert_eq!(ctx.provision("n", "manage").await["provision_state"], "manageable");
        assert_eq!(ctx.provision("n", "provide").await["provision_state"], "available");
        // One whose steps need the ramdisk it disables fails cleaning
        // before anything boots.
        let wipe = json!({"name": "CUSTOM_WIPE", "disable_ramdisk": true, "steps": [
            {"interface": "deploy", "step": "erase_devices", "order": 1}]});
        let created =
            ctx.request(reqwest::Method::POST, "/v1/runbooks", Some("1.92"), Some(wipe)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let own = json!({"deploy_interface": "direct",
            "driver_info": {"cleaning_runbook": "CUSTOM_WIPE"}});
        manageable(&ctx, "agent", own).await;
        let failed = ctx.provision("agent", "provide").await;
        assert_clean_failed(&failed, "deploy.erase_devices require booting the deploy ramdisk");
        assert_eq!(failed["power_state"], "power off", "{failed}");
        ctx
    })
    .await;

    // As in Ironic, runbook settings do nothing until the step source is
    // `runbook` or `hybrid`.
    let default_source = config(CleanStepSource::Autogenerated, Some("CUSTOM_SCRUB"), &[]);
    with_config(default_source, |ctx| async move {
        marker_runbook(&ctx, "CUSTOM_SCRUB", "scrubbed").await;
        manageable(&ctx, "n", json!({})).await;
        set_traits(&ctx, "n", json!(["CUSTOM_SCRUB"])).await;
        assert_eq!(ctx.provision("n", "provide").await["provision_state"], "available");
        assert_eq!(marker(&ctx, "n").await, None);
        ctx
    })
    .await;
}
