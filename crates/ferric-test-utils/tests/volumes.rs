//! Volume connectors and targets (API 1.32) over real HTTP, on SQLite and
//! PostgreSQL: CRUD, validation, uniqueness, the node power-state rule,
//! listings (node filter, fields, detail, paging, sorting), gating, masking
//! of target secrets and removal with the node.

#![allow(clippy::unwrap_used)]

use ferric_test_utils::{for_each_backend, TestContext};
use ferric_types::{PowerState, ProvisionState};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// Sets a node's power state, provision state and reservation directly in
/// the store (what a conductor would have recorded).
async fn set_node(
    ctx: &TestContext,
    uuid: &str,
    power: Option<PowerState>,
    provision: ProvisionState,
    reservation: Option<&str>,
) {
    let mut node = ctx.store.node_get_by_uuid(Uuid::parse_str(uuid).unwrap()).await.unwrap();
    node.power_state = power;
    node.provision_state = provision;
    node.reservation = reservation.map(str::to_owned);
    ctx.store.node_update(&node).await.unwrap();
}

fn uuid_of(body: &Value) -> String {
    body["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn volume_links_and_gating() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vol-links").await);
        let old = ctx.request(Method::GET, "/v1/volume", Some("1.31"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        for path in ["/v1/volume/connectors", "/v1/volume/targets"] {
            let old = ctx.request(Method::GET, path, Some("1.31"), None).await;
            assert_eq!(old.status, StatusCode::NOT_FOUND, "{path}");
        }
        let old_post =
            ctx.request(Method::POST, "/v1/volume/connectors", Some("1.31"), Some(json!({}))).await;
        assert_eq!(old_post.status, StatusCode::NOT_FOUND);
        let old_node =
            ctx.request(Method::GET, &format!("/v1/nodes/{node}/volume"), Some("1.31"), None).await;
        assert_eq!(old_node.status, StatusCode::NOT_FOUND);

        let root = ctx.request(Method::GET, "/v1/volume", Some("1.32"), None).await;
        assert_eq!(root.status, StatusCode::OK);
        let base = &ctx.base;
        assert_eq!(root.body["links"][0]["href"], format!("{base}/v1/volume/"));
        assert_eq!(root.body["connectors"][0]["href"], format!("{base}/v1/volume/connectors"));
        assert_eq!(root.body["targets"][1]["href"], format!("{base}/volume/targets"));
        // Without the /v1 prefix too.
        assert_eq!(ctx.get("/volume").await.status, StatusCode::OK);

        let of_node = ctx.get(&format!("/v1/nodes/{node}/volume")).await;
        assert_eq!(
            of_node.body["connectors"][0]["href"],
            format!("{base}/v1/nodes/{node}/volume/connectors")
        );
        assert_eq!(ctx.get("/v1/nodes/missing/volume").await.status, StatusCode::NOT_FOUND);

        let v1 = ctx.request(Method::GET, "/v1", Some("1.32"), None).await;
        assert!(v1.body["volume"].is_array());
        let v1_old = ctx.request(Method::GET, "/v1", Some("1.31"), None).await;
        assert!(v1_old.body.get("volume").is_none());
        let shown =
            ctx.request(Method::GET, &format!("/v1/nodes/{node}"), Some("1.32"), None).await;
        assert!(shown.body["volume"].is_array());
        ctx
    })
    .await;
}

#[tokio::test]
async fn connectors_crud_validation_and_uniqueness() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vol-c1").await);
        let other = uuid_of(&ctx.create_node("vol-c2").await);
        let created = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": node, "type": "iqn",
                       "connector_id": "iqn.2017-05.org.openstack:01", "extra": {"a": 1}}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = uuid_of(&created.body);
        assert_eq!(
            created.header("location"),
            Some(format!("{}/v1/volume/connectors/{id}", ctx.base).as_str())
        );
        assert_eq!(created.body["type"], "iqn");
        assert_eq!(created.body["node_uuid"], node.as_str());
        assert_eq!(created.body["extra"], json!({"a": 1}));
        assert!(created.body["created_at"].is_string());
        assert_eq!(
            created.body["links"][0]["href"],
            format!("{}/v1/volume/connectors/{id}", ctx.base)
        );

        // Every validation error, with its message.
        let cases = [
            (json!({"node_uuid": node, "connector_id": "x"}), "type is required"),
            (json!({"node_uuid": node, "type": "fc", "connector_id": "x"}), "Invalid volume connector type \"fc\""),
            (json!({"node_uuid": node, "type": "iqn"}), "connector_id is required"),
            (json!({"node_uuid": node, "type": "iqn", "connector_id": ""}), "connector_id is required"),
            (json!({"type": "iqn", "connector_id": "x"}), "node_uuid is required"),
            (json!({"node_uuid": "vol-c1", "type": "iqn", "connector_id": "x"}), "Expected a UUID for node_uuid"),
            (json!({"node_uuid": Uuid::new_v4(), "type": "iqn", "connector_id": "x"}), "could not be found"),
            (json!({"node_uuid": node, "type": "mac", "connector_id": "zz"}), "Expected a MAC address"),
            (json!({"node_uuid": node, "type": "ip", "connector_id": "10.0.0.300"}), "Expected an IP address"),
            (json!({"node_uuid": node, "type": "iqn", "connector_id": "x", "bogus": 1}), "Unknown attribute for volume connector: bogus"),
            (json!({"node_uuid": node, "type": "iqn", "connector_id": "x", "extra": []}), "Invalid value for extra"),
            (json!({"node_uuid": node, "type": "iqn", "connector_id": "x", "uuid": "nope"}), "Expected a UUID for uuid"),
            (json!([]), "must be a JSON object"),
        ];
        for (body, message) in cases {
            let reply = ctx.post("/v1/volume/connectors", body.clone()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(reply.fault().contains(message), "{body}: {}", reply.fault());
        }

        // (type, connector_id) is unique across nodes; the same ID with
        // another type is fine; MACs are normalised first.
        let dup = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": other, "type": "iqn", "connector_id": "iqn.2017-05.org.openstack:01"}),
            )
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        assert_eq!(
            dup.fault(),
            "A volume connector with type iqn and connector ID iqn.2017-05.org.openstack:01 already exists."
        );
        let mac = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": other, "type": "mac", "connector_id": "AA-BB-CC-DD-EE-01"}),
            )
            .await;
        assert_eq!(mac.status, StatusCode::CREATED);
        assert_eq!(mac.body["connector_id"], "aa:bb:cc:dd:ee:01");
        let mac_dup = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": node, "type": "mac", "connector_id": "aa:bb:cc:dd:ee:01"}),
            )
            .await;
        assert_eq!(mac_dup.status, StatusCode::CONFLICT);
        let wwpn = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": node, "type": "wwpn", "connector_id": "iqn.2017-05.org.openstack:01"}),
            )
            .await;
        assert_eq!(wwpn.status, StatusCode::CREATED);
        let same_uuid = ctx
            .post(
                "/v1/volume/connectors",
                json!({"uuid": id, "node_uuid": node, "type": "ip", "connector_id": "10.0.0.1"}),
            )
            .await;
        assert_eq!(same_uuid.status, StatusCode::CONFLICT);
        assert!(same_uuid.fault().contains(&id), "{}", same_uuid.fault());

        // Show, fields.
        let shown = ctx.get(&format!("/v1/volume/connectors/{id}?fields=uuid,type")).await;
        assert_eq!(shown.status, StatusCode::OK);
        let keys: Vec<&String> = shown.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["links", "type", "uuid"]);
        let bad_field = ctx.get(&format!("/v1/volume/connectors/{id}?fields=bogus")).await;
        assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
        assert_eq!(ctx.get("/v1/volume/connectors/nope").await.status, StatusCode::NOT_FOUND);
        let missing = ctx.get(&format!("/v1/volume/connectors/{}", Uuid::new_v4())).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.fault().starts_with("Volume connector "), "{}", missing.fault());

        // The power-state rule: no update unless the node is powered off;
        // never while it is locked.
        let ops = json!([{"op": "add", "path": "/extra/b", "value": 2}]);
        let refused = ctx.patch(&format!("/v1/volume/connectors/{id}"), ops.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refused.fault(),
            format!(
                "The requested action \"volume connector update\" can not be performed on node \
                 \"{node}\" while it is in state \"None\"."
            )
        );
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Enroll, Some("elsewhere"))
            .await;
        let locked = ctx.patch(&format!("/v1/volume/connectors/{id}"), ops.clone()).await;
        assert_eq!(locked.status, StatusCode::CONFLICT);
        assert!(locked.fault().contains("is locked by host elsewhere"), "{}", locked.fault());
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Enroll, None).await;
        let patched = ctx.patch(&format!("/v1/volume/connectors/{id}"), ops).await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["extra"], json!({"a": 1, "b": 2}));
        assert!(patched.body["updated_at"].is_string());

        // Patches are validated like creates.
        for (ops, status, message) in [
            (json!([{"op": "replace", "path": "/type", "value": "fc"}]), StatusCode::BAD_REQUEST, "Invalid volume connector type"),
            (json!([{"op": "remove", "path": "/connector_id"}]), StatusCode::BAD_REQUEST, "connector_id is required"),
            (json!([{"op": "replace", "path": "/uuid", "value": Uuid::new_v4()}]), StatusCode::BAD_REQUEST, "internal attribute"),
            (json!([{"op": "add", "path": "/bogus", "value": 1}]), StatusCode::BAD_REQUEST, "not allowed"),
            (json!([{"op": "replace", "path": "/node_uuid", "value": "vol-c2"}]), StatusCode::BAD_REQUEST, "Expected a UUID for node_uuid"),
            (json!([{"op": "replace", "path": "/type", "value": "mac"},
                    {"op": "replace", "path": "/connector_id", "value": "aa:bb:cc:dd:ee:01"}]),
             StatusCode::CONFLICT, "already exists"),
        ] {
            let reply = ctx.patch(&format!("/v1/volume/connectors/{id}"), ops.clone()).await;
            assert_eq!(reply.status, status, "{ops}: {:?}", reply.body);
            assert!(reply.fault().contains(message), "{ops}: {}", reply.fault());
        }
        // Moving to another node needs that node powered off too.
        let move_ops = json!([{"op": "replace", "path": "/node_uuid", "value": other}]);
        let moved = ctx.patch(&format!("/v1/volume/connectors/{id}"), move_ops.clone()).await;
        assert_eq!(moved.status, StatusCode::BAD_REQUEST);
        assert!(moved.fault().contains(&other), "{}", moved.fault());
        set_node(&ctx, &other, Some(PowerState::Off), ProvisionState::Enroll, None).await;
        let moved = ctx.patch(&format!("/v1/volume/connectors/{id}"), move_ops).await;
        assert_eq!(moved.status, StatusCode::OK);
        assert_eq!(moved.body["node_uuid"], other.as_str());

        // Deleting: allowed powered off, or in a state where the node itself
        // may be deleted (enroll, manageable, adopt failed); not otherwise.
        set_node(&ctx, &other, Some(PowerState::On), ProvisionState::Available, None).await;
        let refused = ctx.delete(&format!("/v1/volume/connectors/{id}")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.fault().contains("volume connector deletion"), "{}", refused.fault());
        assert!(refused.fault().contains("power on"), "{}", refused.fault());
        set_node(&ctx, &other, Some(PowerState::On), ProvisionState::Manageable, None).await;
        assert_eq!(
            ctx.delete(&format!("/v1/volume/connectors/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            ctx.get(&format!("/v1/volume/connectors/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ctx.delete(&format!("/v1/volume/connectors/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
        ctx
    })
    .await;
}

#[tokio::test]
async fn listings_filter_page_sort_and_select() {
    for_each_backend(|ctx| async move {
        let a = uuid_of(&ctx.create_node("vol-l1").await);
        let b = uuid_of(&ctx.create_node("vol-l2").await);
        for (node, id) in [(&a, "iqn.c"), (&a, "iqn.a"), (&b, "iqn.b")] {
            let reply = ctx
                .post(
                    "/v1/volume/connectors",
                    json!({"node_uuid": node, "type": "iqn", "connector_id": id}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED);
        }
        for (node, index) in [(&a, 0), (&a, 1), (&b, 0)] {
            let reply = ctx
                .post(
                    "/v1/volume/targets",
                    json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": index,
                           "volume_id": format!("vol-{index}")}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        }

        // Default fields, detail, fields, detail + fields.
        let list = ctx.get("/v1/volume/connectors").await;
        assert_eq!(list.body["connectors"].as_array().unwrap().len(), 3);
        let keys: Vec<&String> = list.body["connectors"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["connector_id", "links", "node_uuid", "type", "uuid"]);
        let targets = ctx.get("/v1/volume/targets").await;
        let keys: Vec<&String> = targets.body["targets"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["boot_index", "links", "node_uuid", "uuid", "volume_id", "volume_type"]);
        let detail = ctx.get("/v1/volume/targets?detail=True").await;
        assert!(detail.body["targets"][0]["properties"].is_object());
        // detail is accepted from 1.32 here, unlike on nodes (1.43).
        let detail_32 =
            ctx.request(Method::GET, "/v1/volume/connectors?detail=true", Some("1.32"), None).await;
        assert_eq!(detail_32.status, StatusCode::OK);
        assert!(detail_32.body["connectors"][0]["extra"].is_object());
        let fields = ctx.get("/v1/volume/connectors?fields=connector_id").await;
        assert_eq!(fields.body["connectors"][0].as_object().unwrap().len(), 2);
        let both = ctx.get("/v1/volume/connectors?detail=true&fields=uuid").await;
        assert_eq!(both.status, StatusCode::BAD_REQUEST);
        assert!(both.fault().contains("detail"), "{}", both.fault());
        assert_eq!(
            ctx.get("/v1/volume/targets?fields=bogus").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ctx.get("/v1/volume/targets?bogus=1").await.status, StatusCode::BAD_REQUEST);

        // The node filter (UUID or name) and the node's sub-collections.
        let of_a = ctx.get("/v1/volume/connectors?node=vol-l1").await;
        assert_eq!(of_a.body["connectors"].as_array().unwrap().len(), 2);
        let of_b = ctx.get(&format!("/v1/volume/targets?node={b}")).await;
        assert_eq!(of_b.body["targets"].as_array().unwrap().len(), 1);
        let sub = ctx.get("/v1/nodes/vol-l1/volume/targets?detail=True").await;
        assert_eq!(sub.body["targets"].as_array().unwrap().len(), 2);
        let sub = ctx.get(&format!("/v1/nodes/{b}/volume/connectors")).await;
        assert_eq!(sub.body["connectors"][0]["connector_id"], "iqn.b");
        assert_eq!(ctx.get("/v1/volume/connectors?node=nope").await.status, StatusCode::NOT_FOUND);
        let sub_old = ctx
            .request(Method::GET, &format!("/v1/nodes/{b}/volume/connectors"), Some("1.31"), None)
            .await;
        assert_eq!(sub_old.status, StatusCode::NOT_FOUND);

        // Paging with next links, and sorting.
        let page = ctx.get("/v1/volume/connectors?limit=2").await;
        assert_eq!(page.body["connectors"].as_array().unwrap().len(), 2);
        let next = page.body["next"].as_str().unwrap().to_owned();
        assert!(next.starts_with(&format!("{}/v1/volume/connectors?", ctx.base)), "{next}");
        let rest = ctx.get(next.trim_start_matches(&ctx.base)).await;
        assert_eq!(rest.body["connectors"].as_array().unwrap().len(), 1);
        assert!(rest.body.get("next").is_none());
        let sub_page = ctx.get(&format!("/v1/nodes/{a}/volume/targets?limit=1")).await;
        assert!(sub_page.body["next"]
            .as_str()
            .unwrap()
            .contains(&format!("/v1/nodes/{a}/volume/targets?")));
        let sorted = ctx.get("/v1/volume/connectors?sort_key=connector_id&sort_dir=desc").await;
        let ids: Vec<&str> = sorted.body["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["connector_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["iqn.c", "iqn.b", "iqn.a"]);
        let by_index = ctx.get("/v1/volume/targets?sort_key=boot_index&limit=2").await;
        let marker = by_index.body["targets"][1]["uuid"].as_str().unwrap().to_owned();
        let after =
            ctx.get(&format!("/v1/volume/targets?sort_key=boot_index&marker={marker}")).await;
        assert_eq!(after.body["targets"][0]["boot_index"], 1);
        for bad in ["sort_key=extra", "sort_key=bogus", "sort_dir=up", "limit=0", "marker=nope"] {
            let reply = ctx.get(&format!("/v1/volume/connectors?{bad}")).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let extra = ctx.get("/v1/volume/targets?sort_key=properties").await;
        assert!(extra.fault().contains("invalid field for sorting"), "{}", extra.fault());
        let gone = ctx.get(&format!("/v1/volume/targets?marker={}", Uuid::new_v4())).await;
        assert_eq!(gone.status, StatusCode::BAD_REQUEST);
        ctx
    })
    .await;
}

#[tokio::test]
async fn targets_validation_uniqueness_masking_and_power_rule() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vol-t1").await);
        let other = uuid_of(&ctx.create_node("vol-t2").await);
        let body = json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 0,
                          "volume_id": "04452bed-5367-4202-8bf5-de4335ac56d2",
                          "properties": {"target_iqn": "iqn.x", "auth_password": "s3cret",
                                         "auth_username": "chap"}});
        let created = ctx.post("/v1/volume/targets", body.clone()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = uuid_of(&created.body);
        assert_eq!(created.body["boot_index"], 0);
        assert_eq!(created.body["properties"]["auth_password"], "******");
        assert_eq!(created.body["properties"]["auth_username"], "chap");
        assert!(created.header("location").unwrap().ends_with(&format!("/v1/volume/targets/{id}")));
        let shown = ctx.get(&format!("/v1/volume/targets/{id}")).await;
        assert_eq!(shown.body["properties"]["auth_password"], "******");

        // (node, boot_index) is unique; other nodes may reuse an index.
        let dup = ctx.post("/v1/volume/targets", body.clone()).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        assert_eq!(
            dup.fault(),
            "A volume target with boot index '0' for the same node already exists."
        );
        let mut elsewhere = body.clone();
        elsewhere["node_uuid"] = json!(other);
        assert_eq!(ctx.post("/v1/volume/targets", elsewhere).await.status, StatusCode::CREATED);

        let cases = [
            (json!({"node_uuid": node, "boot_index": 1, "volume_id": "v"}), "volume_type is required"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "volume_id": "v"}), "boot_index is required"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": -1, "volume_id": "v"}), "non-negative integer"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": "1", "volume_id": "v"}), "non-negative integer"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1.5, "volume_id": "v"}), "non-negative integer"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1}), "volume_id is required"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1, "volume_id": "x".repeat(37)}), "longer than 36"),
            (json!({"node_uuid": node, "volume_type": "x".repeat(65), "boot_index": 1, "volume_id": "v"}), "longer than 64"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1, "volume_id": "v", "properties": "p"}), "Invalid value for properties"),
            (json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1, "volume_id": "v", "type": "x"}), "Unknown attribute for volume target: type"),
            (json!({"volume_type": "iscsi", "boot_index": 1, "volume_id": "v"}), "node_uuid is required"),
        ];
        for (body, message) in cases {
            let reply = ctx.post("/v1/volume/targets", body.clone()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(reply.fault().contains(message), "{body}: {}", reply.fault());
        }

        // Updates: only powered off; a patch that leaves the secret alone
        // keeps it (the masked view is never written back).
        let ops = json!([{"op": "replace", "path": "/volume_type", "value": "fibre_channel"},
                         {"op": "add", "path": "/properties/lun", "value": 1}]);
        let refused = ctx.patch(&format!("/v1/volume/targets/{id}"), ops.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.fault().contains("volume target update"), "{}", refused.fault());
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Available, None).await;
        let patched = ctx.patch(&format!("/v1/volume/targets/{id}"), ops).await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["volume_type"], "fibre_channel");
        assert_eq!(patched.body["properties"]["lun"], 1);
        let stored = ctx.store.volume_target_get(Uuid::parse_str(&id).unwrap()).await.unwrap();
        assert_eq!(stored.properties["auth_password"], "s3cret");
        let second = ctx
            .post(
                "/v1/volume/targets",
                json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 1, "volume_id": "v1"}),
            )
            .await;
        let second = uuid_of(&second.body);
        let clash = ctx
            .patch(
                &format!("/v1/volume/targets/{second}"),
                json!([{"op": "replace", "path": "/boot_index", "value": 0}]),
            )
            .await;
        assert_eq!(clash.status, StatusCode::CONFLICT);
        assert!(clash.fault().contains("boot index '0'"), "{}", clash.fault());
        let bad = ctx
            .patch(
                &format!("/v1/volume/targets/{second}"),
                json!([{"op": "remove", "path": "/boot_index"}]),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);

        // Deleting from available needs the power off; powered on it is refused.
        set_node(&ctx, &node, Some(PowerState::On), ProvisionState::Available, None).await;
        let refused = ctx.delete(&format!("/v1/volume/targets/{id}")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.fault().contains("volume target deletion"), "{}", refused.fault());
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Available, Some("h")).await;
        assert_eq!(
            ctx.delete(&format!("/v1/volume/targets/{id}")).await.status,
            StatusCode::CONFLICT
        );
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Available, None).await;
        assert_eq!(
            ctx.delete(&format!("/v1/volume/targets/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
        ctx
    })
    .await;
}

#[tokio::test]
async fn deleting_a_node_removes_its_connectors_and_targets() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vol-gone").await);
        let keep = uuid_of(&ctx.create_node("vol-keep").await);
        let connector = ctx
            .post("/v1/volume/connectors", json!({"node_uuid": node, "type": "ip", "connector_id": "10.0.0.9"}))
            .await;
        let connector = uuid_of(&connector.body);
        let target = ctx
            .post(
                "/v1/volume/targets",
                json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 0, "volume_id": "v"}),
            )
            .await;
        let target = uuid_of(&target.body);
        let kept = ctx
            .post("/v1/volume/connectors", json!({"node_uuid": keep, "type": "ip", "connector_id": "10.0.0.10"}))
            .await;
        assert_eq!(kept.status, StatusCode::CREATED);

        assert_eq!(ctx.delete(&format!("/v1/nodes/{node}")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(
            ctx.get(&format!("/v1/volume/connectors/{connector}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ctx.get(&format!("/v1/volume/targets/{target}")).await.status,
            StatusCode::NOT_FOUND
        );
        let left = ctx.get("/v1/volume/connectors").await;
        assert_eq!(left.body["connectors"].as_array().unwrap().len(), 1);
        assert!(ctx.get("/v1/volume/targets").await.body["targets"].as_array().unwrap().is_empty());
        // The ID is free again.
        let again = ctx
            .post("/v1/volume/connectors", json!({"node_uuid": keep, "type": "ip", "connector_id": "10.0.0.9"}))
            .await;
        assert_eq!(again.status, StatusCode::CREATED);
        ctx
    })
    .await;
}

/// Concurrent PATCHes of one volume connector, and of one volume target,
/// all keep their change.
#[tokio::test]
async fn concurrent_patches_are_not_lost() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vol-race").await);
        set_node(&ctx, &node, Some(PowerState::Off), ProvisionState::Enroll, None).await;
        let connector = ctx
            .post(
                "/v1/volume/connectors",
                json!({"node_uuid": node, "type": "iqn", "connector_id": "iqn.2017-05.org.race:01"}),
            )
            .await;
        assert_eq!(connector.status, StatusCode::CREATED, "{:?}", connector.body);
        let path = format!("/v1/volume/connectors/{}", uuid_of(&connector.body));
        ctx.assert_concurrent_extra_patches(&path, 20).await;

        let target = ctx
            .post(
                "/v1/volume/targets",
                json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": 0,
                       "volume_id": "04452bed-5367-4202-8bf5-de4335ac56d2"}),
            )
            .await;
        assert_eq!(target.status, StatusCode::CREATED, "{:?}", target.body);
        let path = format!("/v1/volume/targets/{}", uuid_of(&target.body));
        ctx.assert_concurrent_extra_patches(&path, 20).await;
        ctx
    })
    .await;
}
