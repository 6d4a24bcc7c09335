//! The API over real HTTP, on SQLite and PostgreSQL: negotiation, errors,
//! CRUD, pagination, patching, masking, and nodes moved through their
//! lifecycle by a real conductor with fake hardware.

#![allow(clippy::unwrap_used)]

use ferric_test_utils::{for_each_backend, TestContext};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn version_documents_and_headers() {
    for_each_backend(|ctx| async move {
        let root = ctx.request(Method::GET, "/", None, None).await;
        assert_eq!(root.status, StatusCode::OK);
        assert_eq!(root.body["default_version"]["version"], "1.115");
        assert_eq!(root.body["default_version"]["min_version"], "1.1");
        assert_eq!(root.header("x-openstack-ironic-api-minimum-version"), Some("1.1"));
        assert_eq!(root.header("x-openstack-ironic-api-maximum-version"), Some("1.115"));
        assert!(root.header("openstack-request-id").is_some_and(|id| id.starts_with("req-")));
        assert_eq!(root.header("x-openstack-ironic-api-version"), Some("1.1"));

        let v1 = ctx.request(Method::GET, "/v1/", Some("1.49"), None).await;
        assert_eq!(v1.status, StatusCode::OK);
        assert!(v1.body["conductors"].is_array());
        assert!(v1.body["nodes"].is_array());
        let old = ctx.request(Method::GET, "/v1", Some("1.22"), None).await;
        assert!(old.body.get("conductors").is_none());

        // Version negotiation errors carry the range headers too.
        let too_new = ctx.request(Method::GET, "/v1/nodes", Some("1.200"), None).await;
        assert_eq!(too_new.status, StatusCode::NOT_ACCEPTABLE);
        assert!(too_new.fault().contains("[1.1, 1.115]"), "{}", too_new.fault());
        assert_eq!(too_new.header("x-openstack-ironic-api-maximum-version"), Some("1.115"));
        let garbage = ctx.request(Method::GET, "/v1/nodes", Some("banana"), None).await;
        assert_eq!(garbage.status, StatusCode::NOT_ACCEPTABLE);

        // The standard header wins; `latest` is the maximum.
        let standard = ctx
            .client
            .get(format!("{}/v1/nodes", ctx.base))
            .header("OpenStack-API-Version", "baremetal 1.77")
            .send()
            .await
            .unwrap();
        assert_eq!(standard.headers()["x-openstack-ironic-api-version"], "1.77");
        let latest = ctx.get("/v1/nodes").await;
        assert_eq!(latest.header("x-openstack-ironic-api-version"), Some("1.115"));

        // Unknown paths and methods: Ironic's envelope, never a bare page.
        let missing = ctx.get("/v1/bogus").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.body["error_message"].is_string());
        let not_allowed =
            ctx.request(Method::POST, "/v1/drivers", Some("latest"), Some(json!({}))).await;
        assert_eq!(not_allowed.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(not_allowed.body["error_message"].is_string());

        // /nodes is /v1/nodes, and a trailing slash is ignored.
        assert_eq!(ctx.get("/nodes").await.status, StatusCode::OK);
        assert_eq!(ctx.get("/v1/nodes/").await.status, StatusCode::OK);
        // Endpoints newer than the request are hidden.
        let conductors_old = ctx.request(Method::GET, "/v1/conductors", Some("1.48"), None).await;
        assert_eq!(conductors_old.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn old_microversions_see_old_shapes() {
    for_each_backend(|ctx| async move {
        // Below 1.11 new nodes start available; below 1.2 that reads as null.
        let created = ctx
            .request(Method::POST, "/v1/nodes", None, Some(json!({"driver": "fake-hardware"})))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["provision_state"], Value::Null);
        assert!(created.body.get("name").is_none(), "name appears at 1.5");
        assert!(created.body.get("traits").is_none());
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        let at_10 =
            ctx.request(Method::GET, &format!("/v1/nodes/{uuid}"), Some("1.10"), None).await;
        assert_eq!(at_10.body["provision_state"], "available");
        assert!(at_10.body.get("resource_class").is_none());
        // Fields newer than the version are refused on create (406).
        let new_field = ctx
            .request(
                Method::POST,
                "/v1/nodes",
                Some("1.20"),
                Some(json!({"driver": "fake-hardware", "resource_class": "x"})),
            )
            .await;
        assert_eq!(new_field.status, StatusCode::NOT_ACCEPTABLE);
        // A `fields` selection of a newer field: 406.
        let fields = ctx.request(Method::GET, "/v1/nodes?fields=traits", Some("1.36"), None).await;
        assert_eq!(fields.status, StatusCode::NOT_ACCEPTABLE);
        // Verbs newer than the version: 406.
        let verb = ctx
            .request(
                Method::PUT,
                &format!("/v1/nodes/{uuid}/states/provision"),
                Some("1.72"),
                Some(json!({"target": "deploy"})),
            )
            .await;
        assert_eq!(verb.status, StatusCode::NOT_ACCEPTABLE);
        ctx
    })
    .await;
}

#[tokio::test]
async fn node_create_show_and_bad_input() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("web-1").await;
        assert_eq!(node["provision_state"], "enroll");
        assert_eq!(node["driver"], "fake-hardware");
        assert_eq!(node["power_interface"], "fake");
        assert_eq!(node["conductor"], ferric_test_utils::HOST);
        let uuid = node["uuid"].as_str().unwrap();
        let by_name = ctx.get("/v1/nodes/web-1").await;
        assert_eq!(by_name.body["uuid"], uuid);
        let by_uuid = ctx.get(&format!("/v1/nodes/{uuid}?fields=uuid,name")).await;
        assert_eq!(by_uuid.body.as_object().unwrap().len(), 3, "{:?}", by_uuid.body);

        let cases: Vec<(Value, StatusCode, &str)> = vec![
            (json!({"driver": "fake-hardware", "name": "web-1"}), StatusCode::CONFLICT, "already exists"),
            (json!({"name": "no-driver"}), StatusCode::BAD_REQUEST, "driver"),
            (json!({"driver": "no-such-driver"}), StatusCode::BAD_REQUEST, "No valid host"),
            (json!({"driver": "fake-hardware", "uuid": "not-a-uuid"}), StatusCode::BAD_REQUEST, "UUID"),
            (json!({"driver": "fake-hardware", "bogus": 1}), StatusCode::BAD_REQUEST, "Unknown attribute"),
            (json!({"driver": "fake-hardware", "provision_state": "active"}), StatusCode::BAD_REQUEST, "read-only"),
            (json!({"driver": "fake-hardware", "name": "bad name"}), StatusCode::BAD_REQUEST, "logical name"),
            (json!({"driver": "fake-hardware", "driver_info": "x"}), StatusCode::BAD_REQUEST, "JSON object"),
            (json!({"driver": "fake-hardware", "power_interface": "ipmitool"}), StatusCode::BAD_REQUEST, "not supported"),
            (json!({"driver": "fake-hardware", "chassis_uuid": uuid::Uuid::new_v4().to_string()}), StatusCode::BAD_REQUEST, "Chassis"),
            (json!(["not", "an", "object"]), StatusCode::BAD_REQUEST, "object"),
        ];
        for (body, status, text) in cases {
            let reply = ctx.post("/v1/nodes", body.clone()).await;
            assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
            assert!(reply.fault().contains(text), "{body}: {}", reply.fault());
        }
        // Malformed JSON and oversized bodies.
        let raw = ctx
            .client
            .post(format!("{}/v1/nodes", ctx.base))
            .header("content-type", "application/json")
            .body("{\"driver\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        let huge = json!({"driver": "fake-hardware", "extra": {"blob": "x".repeat(9 * 1024 * 1024)}});
        let too_big = ctx.post("/v1/nodes", huge).await;
        assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
        let missing = ctx.get("/v1/nodes/nope").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.fault(), "Node nope could not be found.");
        // Nothing partial was written.
        let all = ctx.get("/v1/nodes").await;
        assert_eq!(all.body["nodes"].as_array().unwrap().len(), 1);
        ctx
    })
    .await;
}

#[tokio::test]
async fn pagination_sorting_and_fields() {
    for_each_backend(|ctx| async move {
        for index in 0..7 {
            ctx.create_node(&format!("node-{index}")).await;
        }
        // Follow `next` links three at a time.
        let mut names = Vec::new();
        let mut url = format!("{}/v1/nodes?limit=3&sort_key=name&sort_dir=desc", ctx.base);
        loop {
            let path = url.trim_start_matches(&ctx.base).to_owned();
            let page = ctx.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            for node in page.body["nodes"].as_array().unwrap() {
                names.push(node["name"].as_str().unwrap().to_owned());
            }
            match page.body["next"].as_str() {
                Some(next) => {
                    assert!(next.contains("sort_key=name"), "{next}");
                    url = next.to_owned();
                }
                None => break,
            }
        }
        let expected: Vec<String> = (0..7).rev().map(|i| format!("node-{i}")).collect();
        assert_eq!(names, expected);
        // A plain list shows the default fields; detail shows everything.
        let plain = ctx.get("/v1/nodes").await;
        let first = plain.body["nodes"][0].as_object().unwrap();
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "instance_uuid",
                "links",
                "maintenance",
                "name",
                "power_state",
                "provision_state",
                "uuid"
            ]
        );
        let detail = ctx.get("/v1/nodes?detail=true").await;
        assert!(detail.body["nodes"][0]["driver_info"].is_object());
        let legacy_detail = ctx.get("/v1/nodes/detail").await;
        assert_eq!(legacy_detail.body["nodes"].as_array().unwrap().len(), 7);
        let fields = ctx.get("/v1/nodes?fields=name,driver").await;
        assert_eq!(fields.body["nodes"][0].as_object().unwrap().len(), 3);
        // Filters.
        let enrolled = ctx.get("/v1/nodes?provision_state=enroll&driver=fake-hardware").await;
        assert_eq!(enrolled.body["nodes"].as_array().unwrap().len(), 7);
        let none = ctx.get("/v1/nodes?provision_state=active").await;
        assert_eq!(none.body["nodes"].as_array().unwrap().len(), 0);
        // Bad listing arguments.
        for bad in [
            "/v1/nodes?limit=0",
            "/v1/nodes?limit=abc",
            "/v1/nodes?sort_key=driver_info",
            "/v1/nodes?sort_dir=sideways",
            "/v1/nodes?marker=not-a-uuid",
            "/v1/nodes?fields=bogus",
            "/v1/nodes?provision_state=bogus",
            "/v1/nodes?bogus=1",
            "/v1/nodes?detail=true&fields=name",
        ] {
            assert_eq!(ctx.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        ctx
    })
    .await;
}

#[tokio::test]
async fn patching_nodes() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("patchy").await;
        let uuid = node["uuid"].as_str().unwrap().to_owned();
        let path = format!("/v1/nodes/{uuid}");
        let reply = ctx
            .patch(
                &path,
                json!([
                    {"op": "replace", "path": "/name", "value": "renamed"},
                    {"op": "add", "path": "/extra/rack", "value": "r1"},
                    {"op": "add", "path": "/properties/cpus", "value": 8},
                    {"op": "add", "path": "/driver_info/ipmi_password", "value": "s3cret"},
                    {"op": "replace", "path": "/resource_class", "value": "baremetal"},
                    {"op": "add", "path": "/description", "value": "a node"},
                ]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["name"], "renamed");
        assert_eq!(reply.body["extra"]["rack"], "r1");
        assert_eq!(reply.body["properties"]["cpus"], 8);
        assert_eq!(reply.body["driver_info"]["ipmi_password"], "******");
        assert_eq!(reply.body["resource_class"], "baremetal");
        // The secret is stored, just never shown.
        let stored = ctx.store.node_get_by_uuid(uuid.parse().unwrap()).await.unwrap();
        assert_eq!(stored.driver_info["ipmi_password"], "s3cret");
        let listed = ctx.get("/v1/nodes/detail").await;
        assert_eq!(listed.body["nodes"][0]["driver_info"]["ipmi_password"], "******");
        // Remove resets to the default.
        let removed = ctx.patch(&path, json!([{"op": "remove", "path": "/description"}])).await;
        assert_eq!(removed.body["description"], Value::Null);
        // Bad patches change nothing.
        for bad in [
            json!([{"op": "replace", "path": "/provision_state", "value": "active"}]),
            json!([{"op": "add", "path": "/nonsense", "value": 1}]),
            json!([{"op": "remove", "path": "/extra/missing"}]),
            json!([{"op": "move", "path": "/name", "from": "/description"}]),
            json!([{"op": "replace", "path": "/name", "value": "has space"}]),
            json!([{"op": "replace", "path": "/maintenance", "value": "perhaps"}]),
            json!({"op": "replace"}),
            json!([]),
        ] {
            let reply = ctx.patch(&path, bad.clone()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", reply.body);
        }
        assert_eq!(ctx.get(&path).await.body["name"], "renamed");
        // instance_uuid is a compare-and-swap: a second claim is 409.
        let first = uuid::Uuid::new_v4().to_string();
        let claimed = ctx
            .patch(&path, json!([{"op": "add", "path": "/instance_uuid", "value": first}]))
            .await;
        assert_eq!(claimed.status, StatusCode::OK);
        let second = uuid::Uuid::new_v4().to_string();
        let stolen = ctx
            .patch(&path, json!([{"op": "add", "path": "/instance_uuid", "value": second}]))
            .await;
        assert_eq!(stolen.status, StatusCode::CONFLICT);
        // Duplicate names are 409.
        ctx.create_node("other").await;
        let dup =
            ctx.patch(&path, json!([{"op": "replace", "path": "/name", "value": "other"}])).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        // Maintenance through PATCH.
        let on = ctx
            .patch(
                &path,
                json!([{"op": "replace", "path": "/maintenance", "value": true},
                                 {"op": "add", "path": "/maintenance_reason", "value": "disk"}]),
            )
            .await;
        assert_eq!(on.body["maintenance"], true);
        assert_eq!(on.body["maintenance_reason"], "disk");
        let off = ctx
            .patch(&path, json!([{"op": "replace", "path": "/maintenance", "value": false}]))
            .await;
        assert_eq!(off.body["maintenance_reason"], Value::Null);
        // A locked node refuses changes.
        let mut locked = ctx.store.node_get_by_uuid(uuid.parse().unwrap()).await.unwrap();
        locked.reservation = Some("somebody".into());
        ctx.store.node_update(&locked).await.unwrap();
        let busy =
            ctx.patch(&path, json!([{"op": "replace", "path": "/name", "value": "x"}])).await;
        assert_eq!(busy.status, StatusCode::CONFLICT);
        assert!(busy.fault().contains("is locked by host somebody"), "{}", busy.fault());
        ctx
    })
    .await;
}

#[tokio::test]
async fn lifecycle_enroll_to_active_and_back() {
    for_each_backend(|ctx| async move {
        ctx.create_node("life").await;
        let manageable = ctx.provision("life", "manage").await;
        assert_eq!(manageable["provision_state"], "manageable");
        assert_eq!(manageable["power_state"], "power off");
        assert_eq!(manageable["target_provision_state"], Value::Null);
        let available = ctx.provision("life", "provide").await;
        assert_eq!(available["provision_state"], "available");
        let reply = ctx
            .put(
                "/v1/nodes/life/states/provision",
                json!({"target": "active", "configdrive": {"user_data": "#!/bin/sh\necho hi"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert!(reply.header("location").unwrap().ends_with("/states"));
        let active = ctx.wait_until_idle("life").await;
        assert_eq!(active["provision_state"], "active", "{active}");
        assert_eq!(active["power_state"], "power on");
        assert_eq!(active["instance_info"]["configdrive"], "******");
        // Illegal verbs are 400 with Ironic's message.
        let illegal =
            ctx.put("/v1/nodes/life/states/provision", json!({"target": "provide"})).await;
        assert_eq!(illegal.status, StatusCode::BAD_REQUEST);
        assert!(illegal.fault().contains("while it is in state \"active\""), "{}", illegal.fault());
        for bad in [
            json!({"target": "fly"}),
            json!({}),
            json!({"target": "clean"}),
            json!({"target": "active", "bogus": 1}),
        ] {
            assert_eq!(
                ctx.put("/v1/nodes/life/states/provision", bad.clone()).await.status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        let undeployed = ctx.provision("life", "undeploy").await;
        assert_eq!(undeployed["provision_state"], "available");
        assert_eq!(undeployed["power_state"], "power off");
        assert_eq!(undeployed["instance_info"], json!({}));
        // Manual clean with a hold step, then unhold; and abort.
        ctx.provision("life", "manage").await;
        let held = ctx
            .put(
                "/v1/nodes/life/states/provision",
                json!({"target": "clean", "clean_steps": [
                {"interface": "deploy", "step": "erase_devices_metadata"},
                {"interface": "deploy", "step": "hold"},
                {"interface": "deploy", "step": "erase_devices"}]}),
            )
            .await;
        assert_eq!(held.status, StatusCode::ACCEPTED, "{:?}", held.body);
        let on_hold = ctx.wait_until_idle("life").await;
        assert_eq!(on_hold["provision_state"], "clean hold");
        let resumed = ctx.provision("life", "unhold").await;
        assert_eq!(resumed["provision_state"], "manageable", "{resumed}");
        let states = ctx.get("/v1/nodes/life/states").await;
        assert_eq!(states.body["provision_state"], "manageable");
        // Inspect needs an inspect interface: fake-hardware's default is
        // no-inspect, so choose the fake one.
        ctx.patch(
            "/v1/nodes/life",
            json!([{"op": "replace", "path": "/inspect_interface", "value": "fake"}]),
        )
        .await;
        let inspected = ctx.provision("life", "inspect").await;
        assert_eq!(inspected["provision_state"], "manageable");
        assert!(inspected["inspection_finished_at"].is_string());
        // Deleting is allowed in manageable and removes ports too.
        let port = ctx
            .post(
                "/v1/ports",
                json!({"address": "52:54:00:00:00:01", "node_uuid": inspected["uuid"]}),
            )
            .await;
        assert_eq!(port.status, StatusCode::CREATED);
        assert_eq!(ctx.delete("/v1/nodes/life").await.status, StatusCode::NO_CONTENT);
        assert_eq!(
            ctx.get(&format!("/v1/ports/{}", port.body["uuid"].as_str().unwrap())).await.status,
            StatusCode::NOT_FOUND
        );
        ctx
    })
    .await;
}

#[tokio::test]
async fn power_and_management() {
    for_each_backend(|ctx| async move {
        ctx.create_node("pow").await;
        let on = ctx.put("/v1/nodes/pow/states/power", json!({"target": "power on"})).await;
        assert_eq!(on.status, StatusCode::ACCEPTED);
        let node = ctx.wait_until_idle("pow").await;
        assert_eq!(node["power_state"], "power on");
        let soft_old = ctx
            .request(
                Method::PUT,
                "/v1/nodes/pow/states/power",
                Some("1.26"),
                Some(json!({"target": "soft power off"})),
            )
            .await;
        assert_eq!(soft_old.status, StatusCode::NOT_ACCEPTABLE);
        let soft = ctx
            .put("/v1/nodes/pow/states/power", json!({"target": "soft power off", "timeout": 10}))
            .await;
        assert_eq!(soft.status, StatusCode::ACCEPTED);
        assert_eq!(ctx.wait_until_idle("pow").await["power_state"], "power off");
        for bad in [
            json!({"target": "explode"}),
            json!({"target": "power on", "timeout": -1}),
            json!({"target": 1}),
        ] {
            assert_eq!(
                ctx.put("/v1/nodes/pow/states/power", bad.clone()).await.status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        // Boot device.
        let set = ctx
            .put(
                "/v1/nodes/pow/management/boot_device",
                json!({"boot_device": "disk", "persistent": true}),
            )
            .await;
        assert_eq!(set.status, StatusCode::NO_CONTENT, "{:?}", set.body);
        let get = ctx.get("/v1/nodes/pow/management/boot_device").await;
        assert_eq!(get.body, json!({"boot_device": "disk", "persistent": true}));
        let supported = ctx.get("/v1/nodes/pow/management/boot_device/supported").await;
        assert!(supported.body["supported_boot_devices"]
            .as_array()
            .unwrap()
            .contains(&json!("pxe")));
        let unsupported = ctx
            .put("/v1/nodes/pow/management/boot_device", json!({"boot_device": "wanboot"}))
            .await;
        assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
        // Validate.
        let validate = ctx.get("/v1/nodes/pow/validate").await;
        assert_eq!(validate.body["power"]["result"], true);
        assert_eq!(validate.body["bios"]["result"], Value::Null);
        // Maintenance.
        let on = ctx.put("/v1/nodes/pow/maintenance", json!({"reason": "fan"})).await;
        assert_eq!(on.status, StatusCode::ACCEPTED);
        let node = ctx.get("/v1/nodes/pow").await.body;
        assert_eq!(
            (node["maintenance"].clone(), node["maintenance_reason"].clone()),
            (json!(true), json!("fan"))
        );
        assert_eq!(ctx.delete("/v1/nodes/pow/maintenance").await.status, StatusCode::ACCEPTED);
        assert_eq!(ctx.get("/v1/nodes/pow").await.body["maintenance"], false);
        // Traits.
        assert_eq!(
            ctx.put("/v1/nodes/pow/traits", json!({"traits": ["CUSTOM_GPU", "HW_CPU_X86_AVX2"]}))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            ctx.put("/v1/nodes/pow/traits/CUSTOM_FAST", json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        let traits = ctx.get("/v1/nodes/pow/traits").await;
        assert_eq!(traits.body["traits"], json!(["CUSTOM_GPU", "HW_CPU_X86_AVX2", "CUSTOM_FAST"]));
        assert_eq!(
            ctx.put("/v1/nodes/pow/traits/lowercase", json!({})).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ctx.delete("/v1/nodes/pow/traits/CUSTOM_NONE").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ctx.delete("/v1/nodes/pow/traits/CUSTOM_GPU").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(ctx.delete("/v1/nodes/pow/traits").await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get("/v1/nodes/pow/traits").await.body["traits"], json!([]));
        ctx
    })
    .await;
}

#[tokio::test]
async fn ports_portgroups_chassis_drivers_conductors() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("netted").await;
        let uuid = node["uuid"].as_str().unwrap().to_owned();
        let port = ctx.post("/v1/ports", json!({"address": "52:54:00:AA:BB:01", "node_uuid": uuid,
            "local_link_connection": {"switch_id": "0a:1b:2c:3d:4e:5f", "port_id": "Ethernet1/3"}})).await;
        assert_eq!(port.status, StatusCode::CREATED, "{:?}", port.body);
        assert_eq!(port.body["address"], "52:54:00:aa:bb:01");
        let dup = ctx.post("/v1/ports", json!({"address": "52-54-00-aa-bb-01", "node_uuid": uuid})).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        assert!(dup.fault().contains("52:54:00:aa:bb:01"), "{}", dup.fault());
        for bad in [
            json!({"address": "not-a-mac", "node_uuid": uuid}),
            json!({"address": "52:54:00:aa:bb:02"}),
            json!({"address": "52:54:00:aa:bb:02", "node_uuid": uuid::Uuid::new_v4().to_string()}),
            json!({"address": "52:54:00:aa:bb:02", "node_uuid": uuid, "local_link_connection": {"port_id": "x"}}),
            json!({"address": "52:54:00:aa:bb:02", "node_uuid": uuid, "bogus": true}),
        ] {
            assert_eq!(ctx.post("/v1/ports", bad.clone()).await.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let listed = ctx.get(&format!("/v1/ports?node={uuid}")).await;
        assert_eq!(listed.body["ports"].as_array().unwrap().len(), 1);
        let by_address = ctx.get("/v1/ports?address=52:54:00:AA:BB:01").await;
        assert_eq!(by_address.body["ports"].as_array().unwrap().len(), 1);
        let of_node = ctx.get("/v1/nodes/netted/ports/detail").await;
        assert_eq!(of_node.body["ports"][0]["local_link_connection"]["port_id"], "Ethernet1/3");
        let port_uuid = port.body["uuid"].as_str().unwrap().to_owned();
        let patched = ctx.patch(&format!("/v1/ports/{port_uuid}"), json!([{"op": "replace", "path": "/pxe_enabled", "value": false}])).await;
        assert_eq!(patched.body["pxe_enabled"], false);

        let group = ctx.post("/v1/portgroups", json!({"node_uuid": uuid, "name": "bond0", "address": "52:54:00:aa:bb:10", "mode": "802.3ad"})).await;
        assert_eq!(group.status, StatusCode::CREATED, "{:?}", group.body);
        let moved = ctx.patch(&format!("/v1/ports/{port_uuid}"), json!([{"op": "add", "path": "/portgroup_uuid", "value": group.body["uuid"]}])).await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        assert_eq!(ctx.delete("/v1/portgroups/bond0").await.status, StatusCode::CONFLICT);
        let members = ctx.get("/v1/portgroups/bond0/ports").await;
        assert_eq!(members.body["ports"].as_array().unwrap().len(), 1);
        assert_eq!(ctx.delete(&format!("/v1/ports/{port_uuid}")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.delete("/v1/portgroups/bond0").await.status, StatusCode::NO_CONTENT);

        let chassis = ctx.post("/v1/chassis", json!({"description": "rack 7"})).await;
        assert_eq!(chassis.status, StatusCode::CREATED);
        let chassis_uuid = chassis.body["uuid"].as_str().unwrap().to_owned();
        ctx.patch("/v1/nodes/netted", json!([{"op": "add", "path": "/chassis_uuid", "value": chassis_uuid}])).await;
        let inside = ctx.get(&format!("/v1/chassis/{chassis_uuid}/nodes")).await;
        assert_eq!(inside.body["nodes"].as_array().unwrap().len(), 1);
        assert_eq!(ctx.delete(&format!("/v1/chassis/{chassis_uuid}")).await.status, StatusCode::BAD_REQUEST);

        let drivers = ctx.get("/v1/drivers?detail=true").await;
        let fake = drivers.body["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|driver| driver["name"] == "fake-hardware")
            .unwrap()
            .clone();
        assert_eq!(fake["name"], "fake-hardware");
        assert_eq!(fake["hosts"], json!([ferric_test_utils::HOST]));
        assert_eq!(fake["default_power_interface"], "fake");
        assert!(fake["enabled_inspect_interfaces"].as_array().unwrap().contains(&json!("fake")));
        assert_eq!(ctx.get("/v1/drivers/fake-hardware").await.status, StatusCode::OK);
        assert_eq!(ctx.get("/v1/drivers/idrac").await.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.get("/v1/drivers/fake-hardware/properties").await.status, StatusCode::OK);

        let conductors = ctx.get("/v1/conductors?detail=true").await;
        let me = &conductors.body["conductors"][0];
        assert_eq!(me["hostname"], ferric_test_utils::HOST);
        assert_eq!(me["alive"], true);
        assert!(me["drivers"].as_array().unwrap().contains(&json!("fake-hardware")));
        assert_eq!(ctx.get(&format!("/v1/conductors/{}", ferric_test_utils::HOST)).await.status, StatusCode::OK);
        ctx
    })
    .await;
}

#[tokio::test]
async fn a_crash_leaves_no_node_stuck() {
    for_each_backend(|ctx: TestContext| async move {
        let deploying = ctx.create_node("crashed-deploy").await;
        let powering = ctx.create_node("crashed-power").await;
        ctx.provision("crashed-deploy", "manage").await;
        ctx.provision("crashed-deploy", "provide").await;
        // Simulate a conductor killed mid-operation: the nodes are left
        // reserved by it, in a working state / with a power change pending.
        ctx.conductor.shutdown().await;
        let backend = ctx.backend;
        let store = ctx.store.clone();
        let mut node = store
            .node_get_by_uuid(deploying["uuid"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
        node.provision_state = ferric_types::ProvisionState::Deploying;
        node.target_provision_state = Some(ferric_types::ProvisionState::Active);
        node.reservation = Some(ferric_test_utils::HOST.into());
        node.pending_action = Some(ferric_types::PendingAction::Provision(Default::default()));
        store.node_update(&node).await.unwrap();
        let mut node = store
            .node_get_by_uuid(powering["uuid"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
        node.reservation = Some(ferric_test_utils::HOST.into());
        node.target_power_state = Some(ferric_types::PowerTarget::On);
        store.node_update(&node).await.unwrap();
        // Restart on the same database: recovery fails and releases them.
        let restarted =
            TestContext::serve(backend, store, ferric_test_utils::test_conductor_config()).await;
        let failed = restarted.get("/v1/nodes/crashed-deploy").await.body;
        assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
        assert_eq!(failed["reservation"], Value::Null);
        assert!(failed["last_error"].as_str().unwrap().contains("stopped while"), "{failed}");
        let history = restarted.get("/v1/nodes/crashed-deploy/history").await;
        assert_eq!(history.body["history"].as_array().unwrap().len(), 1, "{:?}", history.body);
        let power = restarted.get("/v1/nodes/crashed-power").await.body;
        assert_eq!(power["reservation"], Value::Null);
        assert_eq!(power["target_power_state"], Value::Null);
        // And the failed deploy can be retried.
        let retried = restarted.provision("crashed-deploy", "active").await;
        assert_eq!(retried["provision_state"], "active");
        restarted.stop().await;
        ctx
    })
    .await;
}

#[tokio::test]
async fn wait_states_time_out() {
    for_each_backend(|ctx| async move {
        ctx.create_node("waiting").await;
        ctx.provision("waiting", "manage").await;
        let uuid =
            ctx.get("/v1/nodes/waiting").await.body["uuid"].as_str().unwrap().parse().unwrap();
        let mut node = ctx.store.node_get_by_uuid(uuid).await.unwrap();
        node.provision_state = ferric_types::ProvisionState::CleanWait;
        node.target_provision_state = Some(ferric_types::ProvisionState::Available);
        node.provision_updated_at = Some(ferric_types::Timestamp::now().plus_seconds(-7200));
        ctx.store.node_update(&node).await.unwrap();
        ctx.conductor.reconcile_now().await;
        let node = ctx.get("/v1/nodes/waiting").await.body;
        assert_eq!(node["provision_state"], "clean failed");
        assert_eq!(node["maintenance"], true);
        assert_eq!(node["fault"], "clean failure");
        assert!(node["last_error"].as_str().unwrap().contains("Timeout reached"), "{node}");
        // Recovery path: clear maintenance, manage again.
        ctx.delete("/v1/nodes/waiting/maintenance").await;
        assert_eq!(ctx.provision("waiting", "manage").await["provision_state"], "manageable");
        ctx
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_on_one_node_get_409_not_corruption() {
    for_each_backend(|ctx| async move {
        ctx.create_node("contended").await;
        ctx.provision("contended", "manage").await;
        ctx.provision("contended", "provide").await;
        // Slow the deploy so the node stays locked while we knock.
        ctx.patch(
            "/v1/nodes/contended",
            json!([{"op": "add", "path": "/driver_info/fake_deploy_delay", "value": 0.5}]),
        )
        .await;
        let first =
            ctx.put("/v1/nodes/contended/states/provision", json!({"target": "active"})).await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        let second =
            ctx.put("/v1/nodes/contended/states/provision", json!({"target": "active"})).await;
        assert_eq!(second.status, StatusCode::CONFLICT, "{:?}", second.body);
        let power =
            ctx.put("/v1/nodes/contended/states/power", json!({"target": "power off"})).await;
        assert_eq!(power.status, StatusCode::CONFLICT);
        let done = ctx.wait_until_idle("contended").await;
        assert_eq!(done["provision_state"], "active");
        ctx
    })
    .await;
}

#[tokio::test]
async fn power_sync_puts_unreachable_bmcs_in_maintenance_and_recovers() {
    for_each_backend(|ctx| async move {
        ctx.create_node("flaky").await;
        ctx.provision("flaky", "manage").await;
        ctx.patch(
            "/v1/nodes/flaky",
            json!([{"op": "add", "path": "/driver_info/fake_bmc_unreachable", "value": true}]),
        )
        .await;
        // Three failed reads in a row (the default limit) → maintenance.
        for _ in 0..3 {
            ctx.conductor.reconcile_now().await;
        }
        let node = ctx.get("/v1/nodes/flaky").await.body;
        assert_eq!(node["maintenance"], true, "{node}");
        assert_eq!(node["fault"], "power failure");
        assert_eq!(node["power_state"], Value::Null);
        assert!(node["last_error"].as_str().unwrap().contains("does not answer"), "{node}");
        // A power request to an unreachable BMC fails with a clear error.
        ctx.put("/v1/nodes/flaky/states/power", json!({"target": "power on"})).await;
        let node = ctx.wait_until_idle("flaky").await;
        assert!(
            node["last_error"].as_str().unwrap().contains("Failed to change power state"),
            "{node}"
        );
        // The BMC answers again: the node leaves maintenance by itself.
        let fixed = ctx
            .patch(
                "/v1/nodes/flaky",
                json!([{"op": "remove", "path": "/driver_info/fake_bmc_unreachable"}]),
            )
            .await;
        assert_eq!(fixed.status, StatusCode::OK, "{:?}", fixed.body);
        ctx.conductor.reconcile_now().await;
        let node = ctx.get("/v1/nodes/flaky").await.body;
        assert_eq!(node["maintenance"], false, "{node}");
        assert_eq!(node["fault"], Value::Null);
        assert_eq!(node["power_state"], "power off");
        let history = ctx.get("/v1/nodes/flaky/history").await.body;
        assert!(history["history"].as_array().unwrap().len() >= 2, "{history}");
        ctx
    })
    .await;
}

#[tokio::test]
async fn agent_lookup_and_heartbeat_with_one_time_tokens() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("agented").await;
        let uuid = node["uuid"].as_str().unwrap().to_owned();
        let port = ctx.post("/v1/ports", json!({"address": "52:54:00:0a:0b:0c", "node_uuid": uuid})).await;
        assert_eq!(port.status, StatusCode::CREATED);
        // Not expecting an agent: the same 404 as for an unknown MAC.
        let early = ctx.get("/v1/lookup?addresses=52:54:00:0a:0b:0c").await;
        assert_eq!(early.status, StatusCode::NOT_FOUND);
        let unknown = ctx.get("/v1/lookup?addresses=52:54:00:ff:ff:ff").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.get("/v1/lookup").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(ctx.get("/v1/lookup?addresses=not-a-mac").await.status, StatusCode::BAD_REQUEST);
        let old = ctx.request(Method::GET, "/v1/lookup?addresses=52:54:00:0a:0b:0c", Some("1.21"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);

        // A node waiting for its agent (as a deploy does).
        let mut stored = ctx.store.node_get_by_uuid(uuid.parse().unwrap()).await.unwrap();
        stored.provision_state = ferric_types::ProvisionState::DeployWait;
        stored.target_provision_state = Some(ferric_types::ProvisionState::Active);
        ctx.store.node_update(&stored).await.unwrap();
        let found = ctx.get("/v1/lookup?addresses=aa:bb:cc:dd:ee:ff,52:54:00:0A:0B:0C").await;
        assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
        assert_eq!(found.body["node"]["uuid"], uuid);
        assert_eq!(found.body["config"]["heartbeat_timeout"], 300);
        assert_eq!(found.body["config"]["agent_token_required"], true);
        let token = found.body["config"]["agent_token"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), 43);
        // Issued once: later lookups (and every node view) see it masked.
        let again = ctx.get(&format!("/v1/lookup?node_uuid={uuid}")).await;
        assert_eq!(again.body["config"]["agent_token"], "******");
        let shown = ctx.get("/v1/nodes/agented").await;
        assert_eq!(shown.body["driver_internal_info"]["agent_secret_token"], "******");
        // Below 1.62 no token is handed out.
        let legacy = ctx.request(Method::GET, &format!("/v1/lookup?node_uuid={uuid}"), Some("1.61"), None).await;
        assert_eq!(legacy.body["config"]["agent_token"], Value::Null);

        let beat = |body: Value| {
            let ctx = &ctx;
            async move { ctx.post("/v1/heartbeat/agented", body).await }
        };
        let missing = beat(json!({"callback_url": "http://198.18.0.100:9999"})).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(missing.fault().contains("agent token"), "{}", missing.fault());
        let wrong = beat(json!({"callback_url": "http://198.18.0.100:9999", "agent_token": "nope"})).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert_eq!(beat(json!({"agent_token": token})).await.status, StatusCode::BAD_REQUEST);
        let ok = beat(json!({"callback_url": "http://198.18.0.100:9999", "agent_token": token, "agent_version": "ferric-0.1"})).await;
        assert_eq!(ok.status, StatusCode::ACCEPTED, "{:?}", ok.body);
        let node = ctx.get("/v1/nodes/agented").await.body;
        assert_eq!(node["driver_internal_info"]["agent_url"], "http://198.18.0.100:9999");
        assert_eq!(node["driver_internal_info"]["agent_version"], "ferric-0.1");
        let moved = beat(json!({"callback_url": "http://198.18.0.101:9999", "agent_token": token})).await;
        assert_eq!(moved.status, StatusCode::BAD_REQUEST);
        let too_new = ctx
            .request(Method::POST, "/v1/heartbeat/agented", Some("1.35"),
                Some(json!({"callback_url": "http://198.18.0.100:9999", "agent_token": token, "agent_version": "x"})))
            .await;
        assert_eq!(too_new.status, StatusCode::BAD_REQUEST);

        // The wait ends (abort): the token and agent address are forgotten.
        // The heartbeat handed the node to its conductor for a moment; an
        // abort meanwhile is refused as locked (409, clients retry), so
        // wait for it to let go first.
        for _ in 0..100 {
            if ctx.get("/v1/nodes/agented").await.body["reservation"].is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let aborted = ctx.provision("agented", "abort").await;
        assert_eq!(aborted["provision_state"], "deploy failed");
        assert!(aborted["driver_internal_info"].get("agent_secret_token").is_none(), "{aborted}");
        assert!(aborted["driver_internal_info"].get("agent_url").is_none(), "{aborted}");
        ctx
    })
    .await;
}

#[tokio::test]
async fn shards_and_children() {
    for_each_backend(|ctx| async move {
        let parent = ctx.create_node("chassis-node").await;
        let parent_uuid = parent["uuid"].as_str().unwrap().to_owned();
        for (name, shard) in [("blade-1", "s1"), ("blade-2", "s1"), ("blade-3", "s2")] {
            let reply = ctx
                .post("/v1/nodes", json!({"driver": "fake-hardware", "name": name, "shard": shard, "parent_node": "chassis-node"}))
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            assert_eq!(reply.body["parent_node"], parent_uuid);
        }
        let shards = ctx.get("/v1/shards").await;
        assert_eq!(shards.body, json!({"shards": [{"name": "s1", "count": 2}, {"name": "s2", "count": 1}]}));
        let children = ctx.get("/v1/nodes/chassis-node/children").await;
        assert_eq!(children.body["children"].as_array().unwrap().len(), 3);
        // Child nodes are left out of listings unless asked for (1.83).
        let listed = ctx.get("/v1/nodes").await;
        assert_eq!(listed.body["nodes"].as_array().unwrap().len(), 1);
        let all = ctx.get("/v1/nodes?include_children=true").await;
        assert_eq!(all.body["nodes"].as_array().unwrap().len(), 4);
        let sharded = ctx.get("/v1/nodes?shard=s1&include_children=true").await;
        assert_eq!(sharded.body["nodes"].as_array().unwrap().len(), 2);
        let old = ctx.request(Method::GET, "/v1/shards", Some("1.81"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn node_inventory() {
    for_each_backend(|ctx| async move {
        let node = ctx.create_node("inventoried").await;
        let uuid: uuid::Uuid = node["uuid"].as_str().unwrap().parse().unwrap();
        let missing = ctx.get("/v1/nodes/inventoried/inventory").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);
        assert!(missing.fault().contains("Inventory"), "{}", missing.fault());
        let inventory = json!({"cpu": {"count": 8, "architecture": "x86_64"}, "disks": []});
        ctx.store.node_inventory_put(uuid, &inventory, &json!({})).await.unwrap();
        let found = ctx.get("/v1/nodes/inventoried/inventory").await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.body, json!({"inventory": inventory, "plugin_data": {}}));
        let old =
            ctx.request(Method::GET, "/v1/nodes/inventoried/inventory", Some("1.80"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        let unknown = ctx.get("/v1/nodes/no-such-node/inventory").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}
