//! Allocations over real HTTP, on SQLite and PostgreSQL: CRUD, listing,
//! version gating, every validation error, how nodes are matched and
//! reserved (resource class, traits, candidates, owner, name first),
//! backfilling, the rules for releasing, node deletion, and many
//! allocations racing for fewer nodes.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use ferric_test_utils::{for_each_backend, TestContext, HOST};
use ferric_types::{HardwareType, Node, PowerState, ProvisionState};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// What a seeded node looks like.
#[derive(Default)]
struct Seed<'a> {
    name: &'a str,
    class: &'a str,
    traits: &'a [&'a str],
    owner: Option<&'a str>,
    lessee: Option<&'a str>,
    state: Option<ProvisionState>,
    maintenance: bool,
    power_unknown: bool,
    instance_uuid: Option<Uuid>,
}

/// Writes a node straight into the store (an `available` fake-hardware
/// node by default), much faster than cleaning it through the conductor.
async fn seed(ctx: &TestContext, seed: Seed<'_>) -> Uuid {
    let state = seed.state.unwrap_or(ProvisionState::Available);
    let mut node = Node::new(Uuid::new_v4(), HardwareType::FakeHardware, state);
    node.name = Some(seed.name.to_owned());
    node.resource_class = Some(seed.class.to_owned());
    node.traits = seed.traits.iter().map(|t| (*t).to_owned()).collect();
    node.owner = seed.owner.map(str::to_owned);
    node.lessee = seed.lessee.map(str::to_owned);
    node.maintenance = seed.maintenance;
    node.power_state = if seed.power_unknown { None } else { Some(PowerState::Off) };
    node.instance_uuid = seed.instance_uuid.map(|uuid| uuid.to_string());
    ctx.store.node_create(&node).await.unwrap().uuid
}

async fn available(ctx: &TestContext, name: &str, class: &str) -> Uuid {
    seed(ctx, Seed { name, class, ..Seed::default() }).await
}

async fn allocate(ctx: &TestContext, body: Value) -> Value {
    let reply = ctx.post("/v1/allocations", body.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{body}: {:?}", reply.body);
    reply.body
}

/// Creates an allocation that must fail with a 400 whose message contains `needle`.
async fn refused(ctx: &TestContext, version: &str, body: Value, status: StatusCode, needle: &str) {
    let reply =
        ctx.request(Method::POST, "/v1/allocations", Some(version), Some(body.clone())).await;
    assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
    assert!(reply.fault().contains(needle), "{body}: {:?} lacks {needle:?}", reply.fault());
}

/// How many allocations `GET /v1/allocations?{query}` lists.
async fn count(ctx: &TestContext, query: &str) -> usize {
    let reply = ctx.get(&format!("/v1/allocations?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    reply.body["allocations"].as_array().unwrap().len()
}

fn uuid_of(value: &Value) -> Uuid {
    Uuid::parse_str(value.as_str().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn create_show_patch_and_delete() {
    for_each_backend(|ctx| async move {
        let node = available(&ctx, "node-1", "gold").await;
        let created = ctx
            .post(
                "/v1/allocations",
                json!({"name": "web-1", "resource_class": "gold", "extra": {"k": "v"},
                       "traits": [], "owner": null}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let body = &created.body;
        assert_eq!(body["state"], "active");
        assert_eq!(body["node_uuid"], node.to_string());
        assert_eq!(body["name"], "web-1");
        assert_eq!(body["resource_class"], "gold");
        assert_eq!(body["extra"], json!({"k": "v"}));
        assert_eq!(body["candidate_nodes"], json!([]));
        assert_eq!(body["last_error"], Value::Null);
        assert!(body["created_at"].is_string());
        let uuid = body["uuid"].as_str().unwrap().to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("{}/v1/allocations/{uuid}", ctx.base).as_str())
        );
        assert_eq!(body["links"][0]["href"], format!("{}/v1/allocations/{uuid}", ctx.base));

        // The node is reserved: its instance is the allocation.
        let shown = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert_eq!(shown["instance_uuid"], uuid);
        assert_eq!(shown["allocation_uuid"], uuid);
        assert_eq!(shown["instance_info"]["traits"], json!([]));

        // By UUID, by name, through the node, with fields.
        assert_eq!(ctx.get(&format!("/v1/allocations/{uuid}")).await.body["name"], "web-1");
        assert_eq!(ctx.get("/v1/allocations/web-1").await.body["uuid"], uuid);
        let upper = ctx.get(&format!("/v1/allocations/{}", uuid.to_uppercase())).await;
        assert_eq!(upper.body["uuid"], uuid, "{:?}", upper.body);
        let of_node = ctx.get("/v1/nodes/node-1/allocation").await;
        assert_eq!(of_node.body["uuid"], uuid);
        let few = ctx.get(&format!("/v1/allocations/{uuid}?fields=uuid,state")).await.body;
        let keys: HashSet<&str> = few.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["uuid", "state", "links"]));
        let bad_field = ctx.get(&format!("/v1/allocations/{uuid}?fields=bogus")).await;
        assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
        let few_of_node = ctx.get("/v1/nodes/node-1/allocation?fields=node_uuid").await.body;
        assert_eq!(few_of_node["node_uuid"], node.to_string());
        assert!(few_of_node.get("name").is_none());
        let missing = ctx.get("/v1/allocations/nope").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.fault(), "Allocation nope could not be found.");

        // PATCH: name and extra only.
        let path = format!("/v1/allocations/{uuid}");
        let patched = ctx
            .patch(
                &path,
                json!([{"op": "replace", "path": "/name", "value": "web-2"},
                       {"op": "add", "path": "/extra/more", "value": 1}]),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["name"], "web-2");
        assert_eq!(patched.body["extra"], json!({"k": "v", "more": 1}));
        assert!(patched.body["updated_at"].is_string());
        for (path_name, value) in [
            ("/owner", json!("p")),
            ("/node_uuid", json!(Uuid::new_v4().to_string())),
            ("/state", json!("error")),
            ("/resource_class", json!("x")),
            ("/traits", json!(["CUSTOM_A"])),
        ] {
            let reply = ctx
                .patch(&path, json!([{"op": "replace", "path": path_name, "value": value}]))
                .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path_name}: {:?}", reply.body);
        }
        let bogus = ctx.patch(&path, json!([{"op": "add", "path": "/bogus", "value": 1}])).await;
        assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
        let bad_name =
            ctx.patch(&path, json!([{"op": "replace", "path": "/name", "value": "a b"}])).await;
        assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad_name.fault(), "Cannot update allocation with invalid name 'a b'");
        // Removing the name is allowed; a taken name is 409.
        let other = allocate(&ctx, json!({"name": "taken", "resource_class": "none"})).await;
        assert_eq!(other["state"], "error");
        let taken =
            ctx.patch(&path, json!([{"op": "replace", "path": "/name", "value": "taken"}])).await;
        assert_eq!(taken.status, StatusCode::CONFLICT);
        assert_eq!(taken.fault(), "An allocation with name taken already exists.");
        let unnamed = ctx.patch(&path, json!([{"op": "remove", "path": "/name"}])).await;
        assert_eq!(unnamed.status, StatusCode::OK);
        assert_eq!(unnamed.body["name"], Value::Null);

        // DELETE frees the node (it is available, not deployed).
        assert_eq!(ctx.delete(&path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.delete(&path).await.status, StatusCode::NOT_FOUND);
        let freed = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert_eq!(freed["instance_uuid"], Value::Null);
        assert_eq!(freed["allocation_uuid"], Value::Null);
        let none = ctx.get(&format!("/v1/nodes/{node}/allocation")).await;
        assert_eq!(none.status, StatusCode::NOT_FOUND);
        assert_eq!(none.fault(), format!("Allocation for node {node} was not found"));
        assert_eq!(
            ctx.delete(&format!("/v1/nodes/{node}/allocation")).await.status,
            StatusCode::NOT_FOUND
        );
        // The node can be allocated again, and an error allocation deleted.
        let again = allocate(&ctx, json!({"resource_class": "gold"})).await;
        assert_eq!(again["node_uuid"], node.to_string());
        assert_eq!(ctx.delete("/v1/allocations/taken").await.status, StatusCode::NO_CONTENT);
        ctx
    })
    .await;
}

#[tokio::test]
async fn version_gating() {
    for_each_backend(|ctx| async move {
        let node = available(&ctx, "gated", "gold").await;
        let at = |version: &'static str, method: Method, path: String, body: Option<Value>| {
            let ctx = &ctx;
            async move { ctx.request(method, &path, Some(version), body).await }
        };
        let list = "/v1/allocations".to_owned();
        assert_eq!(at("1.51", Method::GET, list.clone(), None).await.status, StatusCode::NOT_FOUND);
        let post = at("1.51", Method::POST, list.clone(), Some(json!({"resource_class": "gold"})));
        assert_eq!(post.await.status, StatusCode::METHOD_NOT_ALLOWED);
        let node_allocation = format!("/v1/nodes/{node}/allocation");
        assert_eq!(
            at("1.51", Method::GET, node_allocation.clone(), None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            at("1.51", Method::DELETE, node_allocation.clone(), None).await.status,
            StatusCode::NOT_FOUND
        );
        // Without a version header (1.1) allocations do not exist either.
        assert_eq!(ctx.request(Method::GET, &list, None, None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.get("/allocations").await.status, StatusCode::OK, "top-level alias");

        // 1.52: no owner field, no owner filter, no owner in fields, no
        // backfill, no PATCH.
        let created =
            at("1.52", Method::POST, list.clone(), Some(json!({"resource_class": "gold"}))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert!(created.body.get("owner").is_none());
        assert_eq!(created.body["state"], "active");
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        let one = format!("/v1/allocations/{uuid}");
        let owner_body = json!({"resource_class": "gold", "owner": "p"});
        refused(&ctx, "1.59", owner_body, StatusCode::NOT_ACCEPTABLE, "owner").await;
        let owner_filter = at("1.59", Method::GET, format!("{list}?owner=p"), None).await;
        assert_eq!(owner_filter.status, StatusCode::NOT_ACCEPTABLE);
        let owner_field = at("1.59", Method::GET, format!("{one}?fields=owner"), None).await;
        assert_eq!(owner_field.status, StatusCode::NOT_ACCEPTABLE);
        assert!(at("1.60", Method::GET, one.clone(), None).await.body["owner"].is_null());
        let backfill = json!({"node": node.to_string()});
        refused(&ctx, "1.57", backfill, StatusCode::BAD_REQUEST, "Cannot set node").await;
        let rename = json!([{"op": "replace", "path": "/name", "value": "x"}]);
        let patch_old = at("1.56", Method::PATCH, one.clone(), Some(rename.clone())).await;
        assert_eq!(patch_old.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            at("1.57", Method::PATCH, one.clone(), Some(rename)).await.status,
            StatusCode::OK
        );
        let delete_old = at("1.51", Method::DELETE, one.clone(), None).await;
        assert_eq!(delete_old.status, StatusCode::METHOD_NOT_ALLOWED);

        // The node's allocation_uuid appears at 1.52; /v1 links at 1.52.
        let node_old = at("1.51", Method::GET, format!("/v1/nodes/{node}"), None).await;
        assert!(node_old.body.get("allocation_uuid").is_none());
        let node_new = at("1.52", Method::GET, format!("/v1/nodes/{node}"), None).await;
        assert_eq!(node_new.body["allocation_uuid"], uuid);
        let v1_old = at("1.51", Method::GET, "/v1".to_owned(), None).await;
        assert!(v1_old.body.get("allocations").is_none());
        let v1_new = at("1.52", Method::GET, "/v1".to_owned(), None).await;
        assert_eq!(v1_new.body["allocations"][0]["href"], format!("{}/v1/allocations", ctx.base));
        ctx
    })
    .await;
}

#[tokio::test]
async fn every_validation_error() {
    for_each_backend(|ctx| async move {
        let bad = StatusCode::BAD_REQUEST;
        let latest = "latest";
        available(&ctx, "spare", "gold").await;
        refused(&ctx, latest, json!([]), bad, "must be a JSON object").await;
        refused(&ctx, latest, json!({"resource_class": "gold", "bogus": 1}), bad, "bogus").await;
        refused(&ctx, latest, json!({}), bad, "The resource_class field is mandatory").await;
        refused(&ctx, latest, json!({"resource_class": ""}), bad, "mandatory").await;
        let long = "x".repeat(81);
        refused(&ctx, latest, json!({"resource_class": long}), bad, "longer than 80").await;
        refused(&ctx, latest, json!({"resource_class": 5}), bad, "resource_class").await;
        for name in ["a b", "", "x/y", &Uuid::new_v4().to_string()] {
            let body = json!({"resource_class": "gold", "name": name});
            let message = format!("Cannot create allocation with invalid name '{name}'");
            refused(&ctx, latest, body, bad, &message).await;
        }
        let body = json!({"resource_class": "gold", "traits": ["lower"]});
        refused(&ctx, latest, body, bad, "Invalid trait \"lower\"").await;
        let body = json!({"resource_class": "gold", "traits": "CUSTOM_A"});
        refused(&ctx, latest, body, bad, "expected a list of strings").await;
        let body = json!({"resource_class": "gold", "traits": [1]});
        refused(&ctx, latest, body, bad, "expected a list of strings").await;
        let body = json!({"resource_class": "gold", "candidate_nodes": ["ghost"]});
        refused(&ctx, latest, body, bad, "Node ghost could not be found.").await;
        let ghost = Uuid::new_v4();
        let body = json!({"resource_class": "gold", "candidate_nodes": [ghost.to_string()]});
        refused(&ctx, latest, body, bad, &format!("Node {ghost} could not be found.")).await;
        let body = json!({"resource_class": "gold", "node": "ghost"});
        refused(&ctx, latest, body, bad, "Node ghost could not be found.").await;
        let body = json!({"resource_class": "gold", "uuid": "not-a-uuid"});
        refused(&ctx, latest, body, bad, "Expected a UUID for uuid").await;
        let body = json!({"resource_class": "gold", "extra": []});
        refused(&ctx, latest, body, bad, "extra").await;
        let body = json!({"resource_class": "gold", "owner": "o".repeat(256)});
        refused(&ctx, latest, body, bad, "owner").await;
        let text = ctx
            .client
            .post(format!("{}/v1/allocations", ctx.base))
            .header("X-OpenStack-Ironic-API-Version", "latest")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), bad);

        // Duplicates are 409, whether or not a node was found.
        let uuid = Uuid::new_v4();
        let first = allocate(
            &ctx,
            json!({"uuid": uuid.to_string(), "name": "dup",
                                         "resource_class": "gold"}),
        )
        .await;
        assert_eq!(first["state"], "active");
        let conflict = StatusCode::CONFLICT;
        let body = json!({"uuid": uuid.to_string(), "resource_class": "none"});
        refused(&ctx, latest, body, conflict, &format!("An allocation with UUID {uuid}")).await;
        let body = json!({"name": "dup", "resource_class": "none"});
        refused(&ctx, latest, body, conflict, "An allocation with name dup already exists.").await;
        available(&ctx, "spare-2", "gold").await;
        let body = json!({"name": "dup", "resource_class": "gold"});
        refused(&ctx, latest, body, conflict, "An allocation with name dup already exists.").await;
        // ... and the refused request did not take the spare node.
        let spare = ctx.get("/v1/nodes/spare-2").await.body;
        assert_eq!(spare["instance_uuid"], Value::Null, "{spare}");
        // A UUID in another form is stored canonically.
        let upper = Uuid::new_v4();
        let created = allocate(
            &ctx,
            json!({"uuid": upper.to_string().to_uppercase(), "resource_class": "none"}),
        )
        .await;
        assert_eq!(created["uuid"], upper.to_string());
        ctx
    })
    .await;
}

#[tokio::test]
async fn matching_rules() {
    for_each_backend(|ctx| async move {
        // Resource class.
        let gold = available(&ctx, "gold-1", "gold").await;
        let failed = allocate(&ctx, json!({"resource_class": "silver"})).await;
        assert_eq!(failed["state"], "error");
        assert_eq!(failed["node_uuid"], Value::Null);
        let uuid = failed["uuid"].as_str().unwrap();
        assert_eq!(
            failed["last_error"],
            format!(
                "Failed to process allocation {uuid}: no available nodes match the resource \
                 class silver."
            )
        );
        // Not available, in maintenance, power unknown, or with an instance:
        // never candidates.
        let manageable = seed(
            &ctx,
            Seed {
                name: "m",
                class: "iron",
                state: Some(ProvisionState::Manageable),
                ..Seed::default()
            },
        )
        .await;
        seed(&ctx, Seed { name: "maint", class: "iron", maintenance: true, ..Seed::default() })
            .await;
        seed(&ctx, Seed { name: "dark", class: "iron", power_unknown: true, ..Seed::default() })
            .await;
        seed(
            &ctx,
            Seed {
                name: "busy",
                class: "iron",
                instance_uuid: Some(Uuid::new_v4()),
                ..Seed::default()
            },
        )
        .await;
        let none = allocate(&ctx, json!({"resource_class": "iron"})).await;
        assert_eq!(none["state"], "error");
        assert!(none["last_error"].as_str().unwrap().contains("no available nodes"));
        let named = allocate(
            &ctx,
            json!({"resource_class": "iron", "candidate_nodes": [manageable.to_string(), "maint"]}),
        )
        .await;
        assert_eq!(named["state"], "error");
        assert!(
            named["last_error"].as_str().unwrap().contains(
                "none of the requested nodes are available and match the resource class iron"
            ),
            "{named}"
        );
        assert_eq!(named["candidate_nodes"][0], manageable.to_string());
        assert_eq!(named["candidate_nodes"].as_array().unwrap().len(), 2);

        // Traits: every requested one.
        let gpu = seed(
            &ctx,
            Seed {
                name: "gpu",
                class: "gold",
                traits: &["CUSTOM_GPU", "CUSTOM_X"],
                ..Seed::default()
            },
        )
        .await;
        let no_trait =
            allocate(&ctx, json!({"resource_class": "gold", "traits": ["CUSTOM_GPU", "CUSTOM_Y"]}))
                .await;
        assert_eq!(no_trait["state"], "error");
        assert!(
            no_trait["last_error"]
                .as_str()
                .unwrap()
                .contains("no suitable nodes have the requested traits"),
            "{no_trait}"
        );
        let with_trait =
            allocate(&ctx, json!({"resource_class": "gold", "traits": ["CUSTOM_GPU"]})).await;
        assert_eq!(with_trait["node_uuid"], gpu.to_string());
        assert_eq!(with_trait["traits"], json!(["CUSTOM_GPU"]));
        let gpu_node = ctx.get(&format!("/v1/nodes/{gpu}")).await.body;
        assert_eq!(gpu_node["instance_info"]["traits"], json!(["CUSTOM_GPU"]));

        // Candidates, by name or UUID, restrict the choice.
        let a = available(&ctx, "cand-a", "bronze").await;
        let b = available(&ctx, "cand-b", "bronze").await;
        available(&ctx, "cand-c", "bronze").await;
        let picked =
            allocate(&ctx, json!({"resource_class": "bronze", "candidate_nodes": ["cand-b"]}))
                .await;
        assert_eq!(picked["node_uuid"], b.to_string());
        assert_eq!(picked["candidate_nodes"], json!([b.to_string()]));
        let by_uuid = allocate(
            &ctx,
            json!({"resource_class": "bronze", "candidate_nodes": [a.to_string(), "cand-b"]}),
        )
        .await;
        assert_eq!(by_uuid["node_uuid"], a.to_string());

        // Owner: the node's owner or lessee must be the allocation's owner.
        seed(&ctx, Seed { name: "p1-own", class: "tin", owner: Some("p1"), ..Seed::default() })
            .await;
        let leased = seed(
            &ctx,
            Seed {
                name: "p2-lease",
                class: "tin",
                owner: Some("p1"),
                lessee: Some("p2"),
                ..Seed::default()
            },
        )
        .await;
        let for_p3 = allocate(&ctx, json!({"resource_class": "tin", "owner": "p3"})).await;
        assert_eq!(for_p3["state"], "error");
        assert_eq!(for_p3["owner"], "p3");
        let for_p2 = allocate(&ctx, json!({"resource_class": "tin", "owner": "p2"})).await;
        assert_eq!(for_p2["node_uuid"], leased.to_string());
        let for_p1 = allocate(&ctx, json!({"resource_class": "tin", "owner": "p1"})).await;
        assert_eq!(for_p1["state"], "active");
        let unowned = allocate(&ctx, json!({"resource_class": "tin"})).await;
        assert_eq!(unowned["state"], "error", "both tin nodes are taken");

        // A node named like the allocation is tried first (1.79).
        for index in 0..8 {
            available(&ctx, &format!("host-{index}"), "named").await;
        }
        for index in [5, 2, 7, 0] {
            let name = format!("host-{index}");
            let got = allocate(&ctx, json!({"resource_class": "named", "name": name})).await;
            let node = ctx.get(&format!("/v1/nodes/{}", got["node_uuid"].as_str().unwrap())).await;
            assert_eq!(node.body["name"], name);
        }
        // When that node is taken, another one is used.
        let taken =
            allocate(&ctx, json!({"resource_class": "named", "name": "host-5.again"})).await;
        assert_eq!(taken["state"], "active");
        assert_eq!(ctx.get(&format!("/v1/nodes/{gold}")).await.body["instance_uuid"], Value::Null);
        ctx
    })
    .await;
}

#[tokio::test]
async fn listing_filters_and_pages() {
    for_each_backend(|ctx| async move {
        let n1 = available(&ctx, "l-1", "gold").await;
        available(&ctx, "l-2", "gold").await;
        let mut uuids = Vec::new();
        let requests = [
            json!({"name": "a-0", "resource_class": "gold", "candidate_nodes": ["l-1"]}),
            json!({"name": "a-1", "resource_class": "gold"}),
            json!({"name": "a-2", "resource_class": "silver", "owner": "p1"}),
            json!({"name": "a-3", "resource_class": "silver", "owner": "p2"}),
            json!({"name": "a-4", "resource_class": "silver", "owner": "p1"}),
        ];
        for body in requests {
            uuids.push(allocate(&ctx, body).await["uuid"].as_str().unwrap().to_owned());
        }
        let list = ctx.get("/v1/allocations").await;
        assert_eq!(list.status, StatusCode::OK);
        let all = list.body["allocations"].as_array().unwrap();
        assert_eq!(all.len(), 5);
        assert!(list.body.get("next").is_none());
        // Full objects, oldest first.
        assert_eq!(all[0]["uuid"], uuids[0]);
        assert!(all[0]["extra"].is_object() && all[0]["links"].is_array());

        assert_eq!(count(&ctx, "state=active").await, 2);
        assert_eq!(count(&ctx, "state=error").await, 3);
        assert_eq!(count(&ctx, "state=allocating").await, 0);
        assert_eq!(count(&ctx, "state=bogus").await, 0);
        assert_eq!(count(&ctx, "resource_class=silver").await, 3);
        assert_eq!(count(&ctx, "owner=p1").await, 2);
        assert_eq!(count(&ctx, "owner=p1&resource_class=silver&state=error").await, 2);
        assert_eq!(count(&ctx, "node=l-1").await, 1);
        assert_eq!(count(&ctx, &format!("node={n1}")).await, 1);
        let node_filter = ctx.get("/v1/allocations?node=ghost").await;
        assert_eq!(node_filter.status, StatusCode::BAD_REQUEST);
        assert_eq!(node_filter.fault(), "Node ghost could not be found.");

        // fields
        let few = ctx.get("/v1/allocations?fields=uuid,name").await.body;
        let keys: HashSet<&str> =
            few["allocations"][0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["uuid", "name", "links"]));
        let wrong = ctx.get("/v1/allocations?fields=uuid,nope").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);

        // Sorting: name descending; forbidden and unknown keys.
        let sorted = ctx.get("/v1/allocations?sort_key=name&sort_dir=desc").await.body;
        let names: Vec<&str> = sorted["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a-4", "a-3", "a-2", "a-1", "a-0"]);
        for key in ["extra", "candidate_nodes", "traits"] {
            let reply = ctx.get(&format!("/v1/allocations?sort_key={key}")).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key}");
            assert_eq!(
                reply.fault(),
                format!("The sort_key value {key} is an invalid field for sorting")
            );
        }
        let unknown = ctx.get("/v1/allocations?sort_key=color").await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        let bad_dir = ctx.get("/v1/allocations?sort_dir=up").await;
        assert_eq!(bad_dir.status, StatusCode::BAD_REQUEST);
        let unknown_arg = ctx.get("/v1/allocations?color=red").await;
        assert_eq!(unknown_arg.status, StatusCode::BAD_REQUEST);

        // Pages of two, following `next`, in both directions.
        for dir in ["asc", "desc"] {
            let mut seen = Vec::new();
            let mut path = format!("/v1/allocations?limit=2&sort_key=created_at&sort_dir={dir}");
            loop {
                let page = ctx.get(&path).await.body;
                for item in page["allocations"].as_array().unwrap() {
                    seen.push(item["uuid"].as_str().unwrap().to_owned());
                }
                match page["next"].as_str() {
                    Some(next) => {
                        assert!(next.contains("limit=2") && next.contains("marker="), "{next}");
                        assert!(next.contains(&format!("sort_dir={dir}")), "{next}");
                        path = next.trim_start_matches(&ctx.base).to_owned();
                    }
                    None => break,
                }
            }
            let mut expected = uuids.clone();
            if dir == "desc" {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{dir}");
        }
        let zero = ctx.get("/v1/allocations?limit=0").await;
        assert_eq!(zero.status, StatusCode::BAD_REQUEST);
        let bad_marker = ctx.get("/v1/allocations?marker=xyz").await;
        assert_eq!(bad_marker.status, StatusCode::BAD_REQUEST);
        let gone_marker = ctx.get(&format!("/v1/allocations?marker={}", Uuid::new_v4())).await;
        assert_eq!(gone_marker.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn backfilling_deployed_nodes() {
    for_each_backend(|ctx| async move {
        let instance = Uuid::new_v4();
        let deployed = seed(
            &ctx,
            Seed {
                name: "deployed",
                class: "gold",
                traits: &["CUSTOM_A"],
                state: Some(ProvisionState::Active),
                instance_uuid: Some(instance),
                ..Seed::default()
            },
        )
        .await;
        // Mismatches are refused with every reason, and nothing is recorded.
        let body = json!({"node": "deployed", "resource_class": "silver", "traits": ["CUSTOM_B"]});
        let reply = ctx.post("/v1/allocations", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let fault = reply.fault();
        assert!(fault.starts_with(&format!("Cannot backfill an allocation for node {deployed}: ")));
        assert!(
            fault
                .contains("Resource class gold does not match the requested resource class silver"),
            "{fault}"
        );
        assert!(fault.contains("List of traits"), "{fault}");
        let other = available(&ctx, "other", "gold").await;
        let body = json!({"node": "deployed", "candidate_nodes": [other.to_string()]});
        refused(&ctx, "latest", body, StatusCode::BAD_REQUEST, "Candidate nodes must be empty")
            .await;
        let wrong_uuid = json!({"node": "deployed", "uuid": Uuid::new_v4().to_string()});
        refused(&ctx, "latest", wrong_uuid, StatusCode::CONFLICT, "is associated with instance")
            .await;
        let available_node = json!({"node": "other"});
        refused(
            &ctx,
            "latest",
            available_node,
            StatusCode::BAD_REQUEST,
            "Node must be in the \"active\" state, but the current state is \"available\"",
        )
        .await;
        assert_eq!(
            ctx.get("/v1/allocations").await.body["allocations"].as_array().unwrap().len(),
            0
        );

        // Without a UUID the instance's UUID is taken; the resource class
        // comes from the node.
        let backfilled = allocate(&ctx, json!({"node": "deployed", "name": "legacy"})).await;
        assert_eq!(backfilled["state"], "active");
        assert_eq!(backfilled["uuid"], instance.to_string());
        assert_eq!(backfilled["node_uuid"], deployed.to_string());
        assert_eq!(backfilled["resource_class"], "gold");
        let node = ctx.get("/v1/nodes/deployed").await.body;
        assert_eq!(node["allocation_uuid"], instance.to_string());
        assert_eq!(node["instance_uuid"], instance.to_string());
        // Again: the node already has an allocation.
        refused(
            &ctx,
            "latest",
            json!({"node": deployed.to_string(), "uuid": Uuid::new_v4().to_string()}),
            StatusCode::CONFLICT,
            "already has allocation",
        )
        .await;

        // A deployed node without an instance gets one.
        let bare = seed(
            &ctx,
            Seed {
                name: "bare",
                class: "gold",
                state: Some(ProvisionState::Active),
                ..Seed::default()
            },
        )
        .await;
        let chosen = Uuid::new_v4();
        let created = allocate(
            &ctx,
            json!({"node": bare.to_string(), "uuid": chosen.to_string(), "resource_class": "gold",
                   "traits": []}),
        )
        .await;
        assert_eq!(created["uuid"], chosen.to_string());
        assert_eq!(ctx.get("/v1/nodes/bare").await.body["instance_uuid"], chosen.to_string());
        ctx
    })
    .await;
}

#[tokio::test]
async fn release_rules_and_node_deletion() {
    for_each_backend(|ctx| async move {
        let deployed = seed(
            &ctx,
            Seed {
                name: "active-node",
                class: "gold",
                state: Some(ProvisionState::Active),
                ..Seed::default()
            },
        )
        .await;
        let allocation = allocate(&ctx, json!({"node": "active-node"})).await;
        let uuid = allocation["uuid"].as_str().unwrap().to_owned();
        // Deployed: refused, by either path.
        let refused_delete = ctx.delete(&format!("/v1/allocations/{uuid}")).await;
        assert_eq!(refused_delete.status, StatusCode::CONFLICT);
        assert_eq!(
            refused_delete.fault(),
            format!(
                "Cannot remove allocation {uuid} for node {deployed}, because the node is active \
                 (and maintenance mode is off)"
            )
        );
        let by_node = ctx.delete("/v1/nodes/active-node/allocation").await;
        assert_eq!(by_node.status, StatusCode::CONFLICT);
        // The node cannot be deleted either while it has an instance.
        assert_eq!(ctx.delete("/v1/nodes/active-node").await.status, StatusCode::CONFLICT);
        // In maintenance it can.
        let maintenance =
            ctx.put("/v1/nodes/active-node/maintenance", json!({"reason": "broken"})).await;
        assert_eq!(maintenance.status, StatusCode::ACCEPTED);
        assert_eq!(
            ctx.delete("/v1/nodes/active-node/allocation").await.status,
            StatusCode::NO_CONTENT
        );
        let node = ctx.get("/v1/nodes/active-node").await.body;
        assert_eq!(node["instance_uuid"], Value::Null);
        assert_eq!(node["allocation_uuid"], Value::Null);
        assert_eq!(ctx.get(&format!("/v1/allocations/{uuid}")).await.status, StatusCode::NOT_FOUND);

        // Deleting a node (in maintenance) deletes its allocation.
        allocate(&ctx, json!({"node": "active-node", "name": "doomed"})).await;
        assert_eq!(ctx.delete("/v1/nodes/active-node").await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get("/v1/allocations/doomed").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            ctx.get("/v1/allocations").await.body["allocations"].as_array().unwrap().len(),
            0
        );

        // A node in the middle of an operation keeps its allocation.
        let busy = seed(
            &ctx,
            Seed {
                name: "busy",
                class: "gold",
                state: Some(ProvisionState::Active),
                ..Seed::default()
            },
        )
        .await;
        let held = allocate(&ctx, json!({"node": "busy"})).await;
        let mut node = ctx.store.node_get_by_uuid(busy).await.unwrap();
        node.provision_state = ProvisionState::Deploying;
        node.target_provision_state = Some(ProvisionState::Active);
        ctx.store.node_update(&node).await.unwrap();
        let mid = ctx.delete(&format!("/v1/allocations/{}", held["uuid"].as_str().unwrap())).await;
        assert_eq!(mid.status, StatusCode::CONFLICT);
        assert!(mid.fault().contains("where updates are not allowed"), "{}", mid.fault());
        // A locked node too.
        let mut node = ctx.store.node_get_by_uuid(busy).await.unwrap();
        node.provision_state = ProvisionState::DeployFailed;
        node.reservation = Some(HOST.into());
        ctx.store.node_update(&node).await.unwrap();
        let locked = ctx.delete("/v1/nodes/busy/allocation").await;
        assert_eq!(locked.status, StatusCode::CONFLICT);
        assert!(
            locked.fault().contains(&format!("is locked by host {HOST}")),
            "{}",
            locked.fault()
        );
        let mut node = ctx.store.node_get_by_uuid(busy).await.unwrap();
        node.reservation = None;
        ctx.store.node_update(&node).await.unwrap();
        assert_eq!(ctx.delete("/v1/nodes/busy/allocation").await.status, StatusCode::NO_CONTENT);
        let missing = ctx.delete("/v1/nodes/ghost/allocation").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn a_node_cleaned_by_the_conductor_is_allocated() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("real").await;
        let uuid = node["uuid"].as_str().unwrap().to_owned();
        let patched = ctx
            .patch(
                &format!("/v1/nodes/{uuid}"),
                json!([
                {"op": "add", "path": "/resource_class", "value": "real"}]),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        ctx.provision(&uuid, "manage").await;
        let ready = ctx.provision(&uuid, "provide").await;
        assert_eq!(ready["provision_state"], "available", "{ready}");
        let allocation = allocate(&ctx, json!({"resource_class": "real", "name": "real"})).await;
        assert_eq!(allocation["state"], "active");
        assert_eq!(allocation["node_uuid"], uuid);
        // Clients poll until the state leaves `allocating`: it already has.
        let polled =
            ctx.get(&format!("/v1/allocations/{}", allocation["uuid"].as_str().unwrap())).await;
        assert_eq!(polled.body["state"], "active");
        // Deployed and undeployed by the conductor: the allocation ends with
        // the deployment, as in Ironic.
        let allocation_uuid = allocation["uuid"].as_str().unwrap().to_owned();
        let deployed = ctx.provision(&uuid, "active").await;
        assert_eq!(deployed["provision_state"], "active", "{deployed}");
        assert_eq!(deployed["instance_uuid"], allocation_uuid);
        assert_eq!(deployed["allocation_uuid"], allocation_uuid);
        let refused = ctx.delete(&format!("/v1/allocations/{allocation_uuid}")).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        let undeployed = ctx.provision(&uuid, "deleted").await;
        assert_eq!(undeployed["provision_state"], "available", "{undeployed}");
        assert_eq!(undeployed["instance_uuid"], Value::Null);
        assert_eq!(undeployed["allocation_uuid"], Value::Null);
        let gone = ctx.get(&format!("/v1/allocations/{allocation_uuid}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let again = allocate(&ctx, json!({"resource_class": "real"})).await;
        assert_eq!(again["node_uuid"], uuid);
        ctx
    })
    .await;
}

#[tokio::test]
async fn a_hundred_allocations_race_for_fifty_nodes() {
    for_each_backend(|ctx| async move {
        let mut nodes = HashSet::new();
        for index in 0..50 {
            nodes.insert(available(&ctx, &format!("race-{index}"), "race").await);
        }
        let mut tasks = Vec::new();
        for index in 0..100 {
            let client = ctx.client.clone();
            let url = format!("{}/v1/allocations", ctx.base);
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("X-OpenStack-Ironic-API-Version", "latest")
                    .json(&json!({"resource_class": "race", "name": format!("alloc-{index}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                response.json::<Value>().await.unwrap()
            }));
        }
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        let active: Vec<&Value> = replies.iter().filter(|a| a["state"] == "active").collect();
        let failed: Vec<&Value> = replies.iter().filter(|a| a["state"] == "error").collect();
        assert_eq!(active.len(), 50, "{replies:?}");
        assert_eq!(failed.len(), 50);
        for allocation in &failed {
            assert_eq!(allocation["node_uuid"], Value::Null);
            assert!(allocation["last_error"]
                .as_str()
                .unwrap()
                .contains("Failed to process allocation"));
        }
        let mut owners: HashMap<Uuid, Uuid> = HashMap::new();
        for allocation in &active {
            let node = uuid_of(&allocation["node_uuid"]);
            assert!(nodes.contains(&node));
            let previous = owners.insert(node, uuid_of(&allocation["uuid"]));
            assert!(previous.is_none(), "node {node} was given to two allocations");
        }
        assert_eq!(owners.len(), 50);

        // The store agrees: every node is held by exactly the allocation
        // that says it holds it.
        let listed = ctx.get("/v1/allocations?state=active").await.body;
        assert_eq!(listed["allocations"].as_array().unwrap().len(), 50);
        let detail = ctx.get("/v1/nodes/detail?resource_class=race").await.body;
        let mut claimed = 0;
        for node in detail["nodes"].as_array().unwrap() {
            let uuid = uuid_of(&node["uuid"]);
            let holder = owners[&uuid];
            assert_eq!(node["instance_uuid"], holder.to_string());
            assert_eq!(node["allocation_uuid"], holder.to_string());
            claimed += 1;
        }
        assert_eq!(claimed, 50);
        ctx
    })
    .await;
}

#[tokio::test]
async fn removing_the_instance_removes_the_allocation() {
    for_each_backend(|ctx| async move {
        let node = available(&ctx, "patched", "gold").await;
        let allocation = allocate(&ctx, json!({"resource_class": "gold", "name": "a"})).await;
        assert_eq!(allocation["node_uuid"], node.to_string());
        let remove = json!([{"op": "remove", "path": "/instance_uuid"}]);
        let patched = ctx.patch("/v1/nodes/patched", remove.clone()).await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["instance_uuid"], Value::Null);
        assert_eq!(patched.body["allocation_uuid"], Value::Null);
        assert_eq!(ctx.get("/v1/allocations/a").await.status, StatusCode::NOT_FOUND);

        // Not on a deployed node out of maintenance.
        seed(
            &ctx,
            Seed {
                name: "deployed",
                class: "gold",
                state: Some(ProvisionState::Active),
                ..Seed::default()
            },
        )
        .await;
        allocate(&ctx, json!({"node": "deployed", "name": "kept"})).await;
        let refused = ctx.patch("/v1/nodes/deployed", remove).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(
            refused.fault().contains("can not have instance_uuid removed"),
            "{}",
            refused.fault()
        );
        assert_eq!(ctx.get("/v1/allocations/kept").await.status, StatusCode::OK);
        ctx
    })
    .await;
}

#[tokio::test]
async fn nodes_held_by_a_conductor_are_not_taken() {
    for_each_backend(|ctx| async move {
        let held = available(&ctx, "held", "gold").await;
        let mut node = ctx.store.node_get_by_uuid(held).await.unwrap();
        node.reservation = Some(HOST.into());
        ctx.store.node_update(&node).await.unwrap();
        let failed = allocate(&ctx, json!({"resource_class": "gold"})).await;
        assert_eq!(failed["state"], "error");
        assert!(
            failed["last_error"]
                .as_str()
                .unwrap()
                .contains("could not reserve any of 1 suitable nodes"),
            "{failed}"
        );
        assert_eq!(ctx.get("/v1/nodes/held").await.body["instance_uuid"], Value::Null);

        // A lock released while the allocation retries: the node is taken.
        let store = ctx.store.clone();
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let mut node = store.node_get_by_uuid(held).await.unwrap();
            node.reservation = None;
            store.node_update(&node).await.unwrap();
        });
        let taken = allocate(&ctx, json!({"resource_class": "gold"})).await;
        release.await.unwrap();
        assert_eq!(taken["state"], "active", "{taken}");
        assert_eq!(taken["node_uuid"], held.to_string());

        // Backfilling a held node is refused at once.
        let deployed = seed(
            &ctx,
            Seed {
                name: "busy",
                class: "gold",
                state: Some(ProvisionState::Active),
                ..Seed::default()
            },
        )
        .await;
        let mut node = ctx.store.node_get_by_uuid(deployed).await.unwrap();
        node.reservation = Some(HOST.into());
        ctx.store.node_update(&node).await.unwrap();
        refused(
            &ctx,
            "latest",
            json!({"node": "busy"}),
            StatusCode::CONFLICT,
            &format!("is locked by host {HOST}"),
        )
        .await;
        ctx
    })
    .await;
}

/// Concurrent PATCHes of one allocation all keep their change.
#[tokio::test]
async fn concurrent_patches_are_not_lost() {
    for_each_backend(|ctx| async move {
        available(&ctx, "race-node", "race").await;
        let allocation = allocate(&ctx, json!({"resource_class": "race"})).await;
        let uuid = allocation["uuid"].as_str().unwrap();
        ctx.assert_concurrent_extra_patches(&format!("/v1/allocations/{uuid}"), 20).await;
        ctx
    })
    .await;
}
