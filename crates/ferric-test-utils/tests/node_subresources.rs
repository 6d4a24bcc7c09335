//! A node's VIFs, virtual media, target RAID configuration, BIOS settings
//! and firmware components, external events and the detailed drivers API,
//! over real HTTP on SQLite and PostgreSQL: happy paths, microversion
//! gating, locking and every validation error with its message.

#![allow(clippy::unwrap_used)]

use ferric_test_utils::{for_each_backend, TestContext};
use ferric_types::FirmwareComponent;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

fn uuid_of(body: &Value) -> String {
    body["uuid"].as_str().unwrap().to_owned()
}

/// Reserves (or releases) a node in the store, as a busy conductor would.
async fn reserve(ctx: &TestContext, node: &str, holder: Option<&str>) {
    let mut stored = ctx.store.node_get_by_uuid(Uuid::parse_str(node).unwrap()).await.unwrap();
    stored.reservation = holder.map(str::to_owned);
    ctx.store.node_update(&stored).await.unwrap();
}

async fn port(ctx: &TestContext, node: &str, mac: &str, extra: Value) -> String {
    let mut body = json!({"node_uuid": node, "address": mac});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let reply = ctx.post("/v1/ports", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    uuid_of(&reply.body)
}

async fn internal_vif(ctx: &TestContext, path: &str) -> Value {
    ctx.get(path).await.body["internal_info"]["tenant_vif_port_id"].clone()
}

/// Sends `body` to `path` and checks the status and fault message.
async fn expect_error(
    ctx: &TestContext,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
    message: &str,
) {
    let reply = ctx.request(method, path, Some("latest"), body.clone()).await;
    assert_eq!(reply.status, status, "{path} {body:?}: {:?}", reply.body);
    assert!(
        reply.fault().contains(message),
        "{path} {body:?}: {:?} lacks {message:?}",
        reply.fault()
    );
}

#[tokio::test]
async fn vifs_attach_list_detach() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vif-node").await);
        let vifs = format!("/v1/nodes/{node}/vifs");
        // Gating: 1.28.
        for method in [Method::GET, Method::POST] {
            let old = ctx.request(method, &vifs, Some("1.27"), Some(json!({"id": "a"}))).await;
            assert_eq!(old.status, StatusCode::NOT_FOUND);
        }
        let old = ctx.request(Method::DELETE, &format!("{vifs}/a"), Some("1.27"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);

        // No ports: nothing to attach to.
        expect_error(&ctx, Method::POST, &vifs, Some(json!({"id": "vif-0"})), StatusCode::BAD_REQUEST,
            "Unable to attach VIF vif-0, not enough free physical ports.").await;

        let plain = port(&ctx, &node, "52:54:00:aa:00:01", json!({"pxe_enabled": false})).await;
        let pxe = port(&ctx, &node, "52:54:00:aa:00:02", json!({})).await;
        let listed = ctx.get(&vifs).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_eq!(listed.body, json!({"vifs": []}));

        // PXE-enabled ports first; extra keys are ignored as in Ironic.
        let first = Uuid::new_v4().to_string();
        let reply = ctx.post(&vifs, json!({"id": first, "nova": "extra"})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        assert_eq!(internal_vif(&ctx, &format!("/v1/ports/{pxe}")).await, json!(first));
        expect_error(&ctx, Method::POST, &vifs, Some(json!({"id": first})), StatusCode::CONFLICT,
            &format!("Unable to attach VIF because VIF {first} is already attached to Ironic Port {pxe}")).await;
        let reply = ctx.post(&vifs, json!({"id": "second-vif"})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(internal_vif(&ctx, &format!("/v1/ports/{plain}")).await, json!("second-vif"));
        expect_error(&ctx, Method::POST, &vifs, Some(json!({"id": "third"})), StatusCode::BAD_REQUEST,
            "not enough free physical ports").await;
        let listed = ctx.get(&vifs).await.body;
        // In port order (the plain port was created first).
        assert_eq!(listed, json!({"vifs": [{"id": "second-vif"}, {"id": first}]}));
        // By name too.
        assert_eq!(ctx.get("/v1/nodes/vif-node/vifs").await.body, listed);

        // Detach.
        let reply = ctx.delete(&format!("{vifs}/second-vif")).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        assert!(internal_vif(&ctx, &format!("/v1/ports/{plain}")).await.is_null());
        expect_error(&ctx, Method::DELETE, &format!("{vifs}/second-vif"), None, StatusCode::BAD_REQUEST,
            &format!("Unable to detach VIF second-vif from node {node} because it is not attached to it.")).await;

        // An explicit port (1.67).
        let reply = ctx.post(&vifs, json!({"id": "pinned", "port_uuid": plain})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        assert_eq!(internal_vif(&ctx, &format!("/v1/ports/{plain}")).await, json!("pinned"));
        let old = ctx
            .request(Method::POST, &vifs, Some("1.66"), Some(json!({"id": "x", "port_uuid": plain})))
            .await;
        assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);

        // Validation.
        let cases = [
            (json!({}), "'id' is a required property"),
            (json!({"id": 5}), "is not of type 'string' (id)"),
            (json!({"id": "not a name"}), "Expected UUID or name for id: not a name"),
            (json!({"id": "x", "port_uuid": "nope"}), "Expected a UUID for port_uuid but received nope."),
            (json!({"id": "x", "port_uuid": plain, "portgroup_uuid": Uuid::new_v4()}),
             "Cannot specify both port_uuid and portgroup_uuid"),
            (json!([]), "must be a JSON object"),
        ];
        for (body, message) in cases {
            expect_error(&ctx, Method::POST, &vifs, Some(body), StatusCode::BAD_REQUEST, message).await;
        }
        expect_error(&ctx, Method::DELETE, &format!("{vifs}/bad%20name"), None, StatusCode::BAD_REQUEST,
            "Expected UUID or name for vif_id: bad name").await;
        expect_error(&ctx, Method::GET, "/v1/nodes/missing/vifs", None, StatusCode::NOT_FOUND,
            "Node missing could not be found.").await;

        // A reserved node is locked.
        reserve(&ctx, &node, Some("other-host")).await;
        expect_error(&ctx, Method::POST, &vifs, Some(json!({"id": "locked"})), StatusCode::CONFLICT,
            "is locked by host other-host").await;
        expect_error(&ctx, Method::DELETE, &format!("{vifs}/pinned"), None, StatusCode::CONFLICT,
            "is locked by host other-host").await;
        reserve(&ctx, &node, None).await;
        ctx
    })
    .await;
}

#[tokio::test]
async fn vifs_prefer_portgroups() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vif-pg").await);
        let vifs = format!("/v1/nodes/{node}/vifs");
        let group = ctx.post("/v1/portgroups", json!({"node_uuid": node, "name": "bond0"})).await;
        assert_eq!(group.status, StatusCode::CREATED, "{:?}", group.body);
        let group = uuid_of(&group.body);
        // An empty portgroup is never chosen.
        let lone = port(&ctx, &node, "52:54:00:bb:00:01", json!({})).await;
        assert_eq!(ctx.post(&vifs, json!({"id": "a"})).await.status, StatusCode::NO_CONTENT);
        assert_eq!(internal_vif(&ctx, &format!("/v1/ports/{lone}")).await, json!("a"));
        let member = port(&ctx, &node, "52:54:00:bb:00:02", json!({"portgroup_uuid": group})).await;
        assert_eq!(ctx.post(&vifs, json!({"id": "b"})).await.status, StatusCode::NO_CONTENT);
        assert_eq!(internal_vif(&ctx, &format!("/v1/portgroups/{group}")).await, json!("b"));
        assert!(internal_vif(&ctx, &format!("/v1/ports/{member}")).await.is_null());
        let listed = ctx.get(&vifs).await.body;
        assert_eq!(listed, json!({"vifs": [{"id": "a"}, {"id": "b"}]}));
        assert_eq!(ctx.delete(&format!("{vifs}/b")).await.status, StatusCode::NO_CONTENT);
        let reply = ctx.post(&vifs, json!({"id": "c", "portgroup_uuid": group})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        assert_eq!(internal_vif(&ctx, &format!("/v1/portgroups/{group}")).await, json!("c"));
        ctx
    })
    .await;
}

#[tokio::test]
async fn virtual_media_attach_and_detach() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("vmedia-node").await);
        let vmedia = format!("/v1/nodes/{node}/vmedia");
        // Credentials in the URL are never shown back.
        let body = json!({"device_type": "cdrom", "image_url": "http://admin:s3cret@images/boot.iso"});
        let old = ctx.request(Method::POST, &vmedia, Some("1.88"), Some(body.clone())).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        let old = ctx.request(Method::DELETE, &vmedia, Some("1.88"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);

        let reply = ctx.post(&vmedia, body).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let reply = ctx
            .post(&vmedia, json!({"device_type": "floppy", "image_url": "nfs://host/f.img",
                                   "image_download_source": "http"}))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let shown = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert!(!shown.to_string().contains("s3cret"), "{shown}");
        let attached = &shown["driver_internal_info"]["fake_vmedia"];
        assert_eq!(attached["cdrom"]["image_url"], "http://admin:******@images/boot.iso");
        assert_eq!(attached["cdrom"]["image_download_source"], "local");
        assert_eq!(attached["floppy"]["image_download_source"], "http");
        // Listed from 1.93 as Ironic does: a bare list of the BMC's slots.
        for old in ["1.88", "1.92"] {
            let reply = ctx.request(Method::GET, &vmedia, Some(old), None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{old}");
        }
        let listed = ctx.request(Method::GET, &vmedia, Some("1.93"), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(
            listed.body,
            json!([
                {"media_types": ["CD", "DVD"], "inserted": true,
                 "image": "http://admin:******@images/boot.iso"},
                {"media_types": ["Floppy"], "inserted": true, "image": "nfs://host/f.img"},
                {"media_types": ["USBStick"], "inserted": false, "image": ""},
            ])
        );
        let by_name = ctx.get("/v1/nodes/vmedia-node/vmedia").await;
        assert_eq!(by_name.body, listed.body);
        expect_error(&ctx, Method::GET, "/v1/nodes/no-such-node/vmedia", None,
            StatusCode::NOT_FOUND, "no-such-node").await;

        let reply = ctx
            .request(Method::DELETE, &format!("{vmedia}?device_types=cdrom"), Some("latest"), None)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let shown = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert!(shown["driver_internal_info"]["fake_vmedia"].get("cdrom").is_none());
        assert_eq!(ctx.delete(&vmedia).await.status, StatusCode::NO_CONTENT);
        let shown = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert!(shown["driver_internal_info"].get("fake_vmedia").is_none());
        let listed = ctx.get(&vmedia).await.body;
        assert!(listed.as_array().unwrap().iter().all(|slot| slot["inserted"] == false), "{listed}");

        let cases = [
            (json!({"image_url": "http://x/y.iso"}), "'device_type' is a required property"),
            (json!({"device_type": "cdrom"}), "'image_url' is a required property"),
            (json!({"device_type": "usb", "image_url": "http://x"}), "'usb' is not one of ['disk', 'cdrom', 'floppy']"),
            (json!({"device_type": "cdrom", "image_url": "ftp://x/y"}), "Unsupported or missing URL scheme: ftp"),
            (json!({"device_type": "cdrom", "image_url": "/local/path"}), "Unsupported or missing URL scheme: "),
            (json!({"device_type": "cdrom", "image_url": "http://x", "image_download_source": "ftp"}),
             "'ftp' is not one of ['http', 'local', 'swift']"),
            (json!({"device_type": "cdrom", "image_url": "http://x", "username": "u"}),
             "Additional properties are not allowed ('username' was unexpected)"),
            (json!({"device_type": 1, "image_url": "http://x"}), "is not of type 'string' (device_type)"),
        ];
        for (body, message) in cases {
            expect_error(&ctx, Method::POST, &vmedia, Some(body), StatusCode::BAD_REQUEST, message).await;
        }
        expect_error(&ctx, Method::DELETE, &format!("{vmedia}?device_types=cdrom,usb"), None,
            StatusCode::BAD_REQUEST, "Invalid device type(s) usb (valid are disk, cdrom, floppy)").await;
        expect_error(&ctx, Method::DELETE, &format!("{vmedia}?bogus=1"), None,
            StatusCode::BAD_REQUEST, "Unknown argument: \"bogus\"").await;

        // IPMI has no virtual media.
        let ipmi = ctx
            .post("/v1/nodes", json!({"driver": "ipmi", "name": "vmedia-ipmi",
                                      "driver_info": {"ipmi_address": "192.0.2.1"}}))
            .await;
        assert_eq!(ipmi.status, StatusCode::CREATED, "{:?}", ipmi.body);
        expect_error(&ctx, Method::POST, "/v1/nodes/vmedia-ipmi/vmedia",
            Some(json!({"device_type": "cdrom", "image_url": "https://x/y.iso"})), StatusCode::BAD_REQUEST,
            "Driver ipmi does not support attach_virtual_media (disabled or not implemented).").await;
        expect_error(&ctx, Method::DELETE, "/v1/nodes/vmedia-ipmi/vmedia", None, StatusCode::BAD_REQUEST,
            "Driver ipmi does not support detach_virtual_media (disabled or not implemented).").await;
        expect_error(&ctx, Method::GET, "/v1/nodes/vmedia-ipmi/vmedia", None, StatusCode::BAD_REQUEST,
            "Driver ipmi does not support get_virtual_media (disabled or not implemented).").await;

        reserve(&ctx, &node, Some("other-host")).await;
        expect_error(&ctx, Method::POST, &vmedia,
            Some(json!({"device_type": "disk", "image_url": "http://x/y.img"})), StatusCode::CONFLICT,
            "is locked by host other-host").await;
        reserve(&ctx, &node, None).await;
        ctx
    })
    .await;
}

#[tokio::test]
async fn target_raid_config() {
    for_each_backend(|ctx| async move {
        let created = ctx
            .post("/v1/nodes", json!({"driver": "fake-hardware", "name": "raid-node",
                                      "raid_interface": "fake"}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let node = uuid_of(&created.body);
        let raid = format!("/v1/nodes/{node}/states/raid");
        let config = json!({"logical_disks": [
            {"size_gb": 100, "raid_level": "1", "is_root_volume": true},
            {"size_gb": "MAX", "raid_level": "5", "volume_name": "data", "disk_type": "ssd",
             "interface_type": "sas", "number_of_physical_disks": 3, "share_physical_disks": false,
             "controller": "RAID.Integrated.1-1", "physical_disks": ["d0", "d1", "d2"]}]});
        let old = ctx.request(Method::PUT, &raid, Some("1.11"), Some(config.clone())).await;
        assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);

        let reply = ctx.put(&raid, config.clone()).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let shown = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        assert_eq!(shown["target_raid_config"], config);
        assert_eq!(shown["raid_config"], json!({}));
        let states = ctx.get(&format!("/v1/nodes/{node}/states")).await.body;
        assert_eq!(states["target_raid_config"], config);
        let old = ctx.request(Method::GET, &format!("/v1/nodes/{node}"), Some("1.11"), None).await;
        assert!(old.body.get("target_raid_config").is_none());

        let cases = [
            (json!({"logical_disks": []}), "RAID config validation error: [] is too short"),
            (json!({"bogus": []}), "'bogus' was unexpected"),
            (json!({"logical_disks": [{"size_gb": 10}]}), "'raid_level' is a required property"),
            (json!({"logical_disks": [{"raid_level": "1"}]}), "'size_gb' is a required property"),
            (json!({"logical_disks": [{"size_gb": 10, "raid_level": "4"}]}), "raid_level"),
            (json!({"logical_disks": [{"size_gb": "ten", "raid_level": "1"}]}), "size_gb"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "is_root_volume": 1}]}), "is_root_volume"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "disk_type": "nvme"}]}), "disk_type"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "interface_type": "usb"}]}), "interface_type"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "number_of_physical_disks": 0}]}), "number_of_physical_disks"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "physical_disks": ["a"]}]}), "'controller' is a dependency of 'physical_disks'"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "colour": "red"}]}), "('colour' was unexpected)"),
            (json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "is_root_volume": true},
                                      {"size_gb": 1, "raid_level": "1", "is_root_volume": true}]}),
             "Raid config cannot have more than one root volume. 2 root volumes were specified"),
            (json!([]), "must be a JSON object"),
        ];
        for (body, message) in cases {
            expect_error(&ctx, Method::PUT, &raid, Some(body), StatusCode::BAD_REQUEST, message).await;
        }
        // Still the valid one.
        assert_eq!(ctx.get(&format!("/v1/nodes/{node}")).await.body["target_raid_config"], config);

        reserve(&ctx, &node, Some("other-host")).await;
        expect_error(&ctx, Method::PUT, &raid, Some(json!({})), StatusCode::CONFLICT,
            "is locked by host other-host").await;
        reserve(&ctx, &node, None).await;
        // {} clears it.
        assert_eq!(ctx.put(&raid, json!({})).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(&format!("/v1/nodes/{node}")).await.body["target_raid_config"], json!({}));

        // no-raid (fake-hardware's default): 404, as Ironic.
        let plain = uuid_of(&ctx.create_node("raid-none").await);
        assert_eq!(ctx.get("/v1/nodes/raid-none").await.body["raid_interface"], "no-raid");
        expect_error(&ctx, Method::PUT, &format!("/v1/nodes/{plain}/states/raid"), Some(config),
            StatusCode::NOT_FOUND, "Driver fake-hardware does not support raid (disabled or not implemented).").await;

        // The driver's logical disk properties.
        let path = "/v1/drivers/fake-hardware/raid/logical_disk_properties";
        let properties = ctx.get(path).await;
        assert_eq!(properties.status, StatusCode::OK);
        let keys: Vec<&String> = properties.body.as_object().unwrap().keys().collect();
        for key in ["raid_level", "size_gb", "volume_name", "is_root_volume", "share_physical_disks",
                    "disk_type", "interface_type", "number_of_physical_disks", "controller", "physical_disks"] {
            assert!(keys.iter().any(|k| *k == key), "{key}");
        }
        assert_eq!(keys.len(), 10);
        assert!(properties.body["size_gb"].as_str().unwrap().contains("MAX"));
        assert_eq!(ctx.get("/v1/drivers/ipmi/raid/logical_disk_properties").await.status, StatusCode::OK);
        let old = ctx.request(Method::GET, path, Some("1.11"), None).await;
        assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);
        expect_error(&ctx, Method::GET, "/v1/drivers/nope/raid/logical_disk_properties", None,
            StatusCode::NOT_FOUND, "Could not find the following driver(s) or hardware type(s): nope.").await;
        ctx
    })
    .await;
}

#[tokio::test]
async fn bios_settings_from_fake_clean_steps() {
    for_each_backend(|ctx| async move {
        let created = ctx
            .post(
                "/v1/nodes",
                json!({"driver": "fake-hardware", "name": "bios-node",
                                      "bios_interface": "fake"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let node = uuid_of(&created.body);
        let bios = format!("/v1/nodes/{node}/bios");
        assert_eq!(
            ctx.request(Method::GET, &bios, Some("1.39"), None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(ctx.get(&bios).await.body, json!({"bios": []}));

        ctx.provision(&node, "manage").await;
        let steps = json!([{"interface": "bios", "step": "apply_configuration",
            "args": {"settings": [{"name": "ProcVirtualization", "value": "Enabled"},
                                  {"name": "BootMode", "value": "Uefi"}]}}]);
        let reply = ctx
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                json!({"target": "clean", "clean_steps": steps}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let settled = ctx.wait_until_idle(&node).await;
        assert_eq!(settled["provision_state"], "manageable", "{settled}");

        let listed = ctx.request(Method::GET, &bios, Some("1.40"), None).await;
        assert_eq!(listed.status, StatusCode::OK);
        let items = listed.body["bios"].as_array().unwrap().clone();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["name"], "ProcVirtualization");
        assert_eq!(items[0]["value"], "Enabled");
        assert!(items[0]["created_at"].is_string());
        assert_eq!(
            items[0]["links"][0]["href"],
            format!("{}/v1/nodes/{node}/bios/ProcVirtualization", ctx.base)
        );
        assert!(items[0].get("attribute_type").is_none());

        // detail and fields (1.74).
        let detail = ctx.get(&format!("{bios}?detail=true")).await.body;
        assert!(detail["bios"][0]["attribute_type"].is_null());
        assert!(detail["bios"][0].as_object().unwrap().contains_key("reset_required"));
        let picked = ctx.get(&format!("{bios}?fields=name")).await.body;
        assert!(picked["bios"][0].get("value").is_none());
        assert_eq!(picked["bios"][0]["name"], "ProcVirtualization");
        expect_error(
            &ctx,
            Method::GET,
            &format!("{bios}?fields=name&detail=true"),
            None,
            StatusCode::BAD_REQUEST,
            "Can not specify ?detail=True and fields in the same request.",
        )
        .await;
        expect_error(
            &ctx,
            Method::GET,
            &format!("{bios}?fields=colour"),
            None,
            StatusCode::BAD_REQUEST,
            "'colour' is not one of",
        )
        .await;
        let old =
            ctx.request(Method::GET, &format!("{bios}?detail=true"), Some("1.73"), None).await;
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        assert!(old.fault().contains("Unknown argument: \"detail\""));

        // One setting.
        let one = ctx.get(&format!("{bios}/BootMode")).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.body["BootMode"]["value"], "Uefi");
        assert!(one.body["BootMode"].as_object().unwrap().contains_key("unique"));
        let old = ctx.request(Method::GET, &format!("{bios}/BootMode"), Some("1.40"), None).await;
        assert!(old.body["BootMode"].get("unique").is_none());
        assert_eq!(
            ctx.request(Method::GET, &format!("{bios}/BootMode"), Some("1.39"), None).await.status,
            StatusCode::NOT_FOUND
        );
        expect_error(
            &ctx,
            Method::GET,
            &format!("{bios}/Nope"),
            None,
            StatusCode::NOT_FOUND,
            &format!("Node {node} doesn't have a BIOS setting 'Nope'"),
        )
        .await;

        // A factory reset forgets them.
        let steps = json!([{"interface": "bios", "step": "factory_reset", "args": {}}]);
        let reply = ctx
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                json!({"target": "clean", "clean_steps": steps}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        ctx.wait_until_idle(&node).await;
        assert_eq!(ctx.get(&bios).await.body, json!({"bios": []}));

        // Bad step arguments fail the cleaning.
        let steps = json!([{"interface": "bios", "step": "apply_configuration", "args": {}}]);
        let reply = ctx
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                json!({"target": "clean", "clean_steps": steps}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let failed = ctx.wait_until_idle(&node).await;
        assert_eq!(failed["provision_state"], "clean failed");
        assert!(failed["last_error"].as_str().unwrap().contains("settings"), "{failed}");
        ctx
    })
    .await;
}

/// Port PATCHes racing each other and a VIF attachment (the conductor
/// writes the port's internal_info) all keep their change.
#[tokio::test]
async fn concurrent_port_writes_are_not_lost() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("race-ports").await);
        let port = port(&ctx, &node, "52:54:00:aa:00:01", json!({})).await;
        let mut tasks = Vec::new();
        // (Four writers and the VIF: each PATCH loses at most four races,
        // within its five attempts.)
        for index in 0..4 {
            let client = ctx.client.clone();
            let url = format!("{}/v1/ports/{port}", ctx.base);
            tasks.push(tokio::spawn(async move {
                let response = client
                    .patch(url)
                    .header("X-OpenStack-Ironic-API-Version", "latest")
                    .json(
                        &json!([{"op": "add", "path": format!("/extra/k{index}"), "value": index}]),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }));
        }
        let attach = ctx.post(&format!("/v1/nodes/{node}/vifs"), json!({"id": "tenant-vif"})).await;
        assert_eq!(attach.status, StatusCode::NO_CONTENT, "{:?}", attach.body);
        for task in tasks {
            task.await.unwrap();
        }
        let shown = ctx.get(&format!("/v1/ports/{port}")).await.body;
        for index in 0..4 {
            assert_eq!(shown["extra"][format!("k{index}")], index, "{shown}");
        }
        assert_eq!(shown["internal_info"]["tenant_vif_port_id"], "tenant-vif", "{shown}");
        ctx
    })
    .await;
}

/// Step arguments carry secrets (a BIOS admin password): neither the running
/// step, nor the step list in driver_internal_info, nor the BIOS settings
/// the BMC reports back show them.
#[tokio::test]
async fn bios_passwords_in_step_args_are_masked() {
    for_each_backend(|ctx| async move {
        let created = ctx
            .post(
                "/v1/nodes",
                json!({"driver": "fake-hardware", "name": "bios-secret", "bios_interface": "fake",
                       "driver_info": {"fake_bios_delay": 1}}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let node = uuid_of(&created.body);
        ctx.provision(&node, "manage").await;
        let steps = json!([{"interface": "bios", "step": "apply_configuration",
            "args": {"settings": [{"name": "AdminPassword", "value": "hunter2"},
                                  {"name": "BootMode", "value": "Uefi"}]}}]);
        let reply = ctx
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                json!({"target": "clean", "clean_steps": steps}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let mut seen_step = false;
        for _ in 0..200 {
            let body = ctx.get(&format!("/v1/nodes/{node}")).await.body;
            assert!(!body.to_string().contains("hunter2"), "{body}");
            if body["clean_step"]["step"] == "apply_configuration" {
                assert_eq!(body["clean_step"]["args"]["settings"][0]["value"], "******");
                assert_eq!(body["clean_step"]["args"]["settings"][1]["value"], "Uefi");
                seen_step = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(seen_step, "the running step was never shown");
        let settled = ctx.wait_until_idle(&node).await;
        assert_eq!(settled["provision_state"], "manageable", "{settled}");
        assert!(!settled.to_string().contains("hunter2"), "{settled}");
        let listed = ctx.get(&format!("/v1/nodes/{node}/bios")).await;
        assert!(!listed.body.to_string().contains("hunter2"), "{:?}", listed.body);
        let shown = ctx.get(&format!("/v1/nodes/{node}/bios/AdminPassword")).await;
        assert_eq!(shown.body["AdminPassword"]["value"], "******", "{:?}", shown.body);
        let shown = ctx.get(&format!("/v1/nodes/{node}/bios/BootMode")).await;
        assert_eq!(shown.body["BootMode"]["value"], "Uefi", "{:?}", shown.body);

        // A step the conductor cannot read fails the cleaning without
        // quoting its args in last_error.
        let steps = json!([{"interface": "bios", "step": "apply_configuration", "priority": "high",
            "args": {"settings": [{"name": "AdminPassword", "value": "hunter2"}]}}]);
        let reply = ctx
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                json!({"target": "clean", "clean_steps": steps}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let failed = ctx.wait_until_idle(&node).await;
        assert_eq!(failed["provision_state"], "clean failed", "{failed}");
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("bios.apply_configuration"), "{error}");
        assert!(!failed.to_string().contains("hunter2"), "{failed}");
        let history = ctx.get(&format!("/v1/nodes/{node}/history")).await;
        assert!(!history.body.to_string().contains("hunter2"), "{:?}", history.body);
        ctx
    })
    .await;
}

#[tokio::test]
async fn firmware_components() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("fw-node").await);
        let firmware = format!("/v1/nodes/{node}/firmware");
        assert_eq!(
            ctx.request(Method::GET, &firmware, Some("1.85"), None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(ctx.get(&firmware).await.body, json!({"firmware": []}));
        let uuid = Uuid::parse_str(&node).unwrap();
        let bios = FirmwareComponent {
            node_uuid: uuid,
            component: "bios".into(),
            initial_version: "1.0".into(),
            current_version: Some("1.0".into()),
            vendor: Some("Acme".into()),
            ..FirmwareComponent::default()
        };
        ctx.store.firmware_put(uuid, std::slice::from_ref(&bios)).await.unwrap();
        let updated = FirmwareComponent {
            current_version: Some("1.1".into()),
            last_version_flashed: Some("1.1".into()),
            initial_version: "ignored".into(),
            ..bios
        };
        ctx.store.firmware_put(uuid, &[updated]).await.unwrap();
        let listed = ctx.request(Method::GET, &firmware, Some("1.86"), None).await.body;
        let item = &listed["firmware"][0];
        assert_eq!(item["component"], "bios");
        assert_eq!(item["initial_version"], "1.0");
        assert_eq!(item["current_version"], "1.1");
        assert_eq!(item["last_version_flashed"], "1.1");
        assert!(item["created_at"].is_string() && item["updated_at"].is_string());
        assert!(item.get("vendor").is_none());
        let latest = ctx.get(&firmware).await.body;
        assert_eq!(latest["firmware"][0]["vendor"], "Acme");
        let picked = ctx.get(&format!("{firmware}?fields=component")).await.body;
        assert!(picked["firmware"][0].get("current_version").is_none());
        assert_eq!(picked["firmware"][0]["component"], "bios");
        let old = ctx
            .request(Method::GET, &format!("{firmware}?fields=vendor"), Some("1.86"), None)
            .await;
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        assert!(old.fault().contains("Fields vendor are not allowed in this API version"));
        expect_error(
            &ctx,
            Method::GET,
            &format!("{firmware}?fields=colour"),
            None,
            StatusCode::BAD_REQUEST,
            "'colour' is not a firmware component field",
        )
        .await;
        // Removed with the node.
        assert_eq!(ctx.delete(&format!("/v1/nodes/{node}")).await.status, StatusCode::NO_CONTENT);
        assert!(ctx.store.firmware_list(uuid).await.unwrap().is_empty());
        ctx
    })
    .await;
}

#[tokio::test]
async fn firmware_components_from_fake_update_steps() {
    for_each_backend(|ctx| async move {
        let created = ctx
            .post(
                "/v1/nodes",
                json!({"driver": "fake-hardware", "name": "flash-node",
                                      "firmware_interface": "fake"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let node = uuid_of(&created.body);
        let firmware = format!("/v1/nodes/{node}/firmware");
        ctx.provision(&node, "manage").await;
        let clean = |steps: Value| {
            let (ctx, node) = (&ctx, &node);
            async move {
                let path = format!("/v1/nodes/{node}/states/provision");
                let reply = ctx.put(&path, json!({"target": "clean", "clean_steps": steps})).await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
                ctx.wait_until_idle(node).await
            }
        };
        let update = |url: &str| {
            json!([{"interface": "firmware", "step": "update",
                    "args": {"settings": [{"component": "bios", "url": url}]}}])
        };
        let settled = clean(update("http://images.example/fw/bios.bin")).await;
        assert_eq!(settled["provision_state"], "manageable", "{settled}");
        let listed = ctx.get(&firmware).await.body;
        let items = listed["firmware"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{listed}");
        // The versions before the flash are the initial ones.
        assert_eq!(items[0]["component"], "bios");
        assert_eq!(items[0]["initial_version"], "1.0.0");
        assert_eq!(items[0]["current_version"], "1.0.1");
        assert_eq!(items[0]["last_version_flashed"], "1.0.1");
        assert_eq!(items[1]["component"], "bmc");
        assert_eq!(items[1]["initial_version"], "1.0.0");
        assert_eq!(items[1]["current_version"], "1.0.0");
        assert_eq!(items[1]["last_version_flashed"], Value::Null);

        // A second flash, the version named in the image: initial kept.
        let settled = clean(update("http://images.example/fw/bios-2.4.1.bin")).await;
        assert_eq!(settled["provision_state"], "manageable", "{settled}");
        let items = ctx.get(&firmware).await.body["firmware"].clone();
        assert_eq!(items[0]["initial_version"], "1.0.0");
        assert_eq!(items[0]["current_version"], "2.4.1");
        assert_eq!(items[0]["last_version_flashed"], "2.4.1");
        assert!(items[0]["updated_at"].is_string(), "{items}");

        // Bad arguments fail the cleaning and flash nothing.
        let bad = json!([{"interface": "firmware", "step": "update",
                          "args": {"settings": [{"component": "bios"}]}}]);
        let failed = clean(bad).await;
        assert_eq!(failed["provision_state"], "clean failed", "{failed}");
        assert!(failed["last_error"].as_str().unwrap().contains("url"), "{failed}");
        assert_eq!(ctx.get(&firmware).await.body["firmware"][0]["current_version"], "2.4.1");

        // Without a fake firmware interface there is nothing to record.
        let plain = uuid_of(&ctx.create_node("no-fw-node").await);
        ctx.provision(&plain, "manage").await;
        let settled = ctx.provision(&plain, "provide").await;
        assert_eq!(settled["provision_state"], "available", "{settled}");
        assert_eq!(
            ctx.get(&format!("/v1/nodes/{plain}/firmware")).await.body,
            json!({"firmware": []})
        );
        ctx
    })
    .await;
}

#[tokio::test]
async fn events_are_validated() {
    for_each_backend(|ctx| async move {
        let event = json!({"event": "network.bind_port", "port_id": Uuid::new_v4(),
            "mac_address": "52:54:00:12:34:56", "status": "ACTIVE", "device_id": Uuid::new_v4(),
            "binding:host_id": Uuid::new_v4(), "binding:vnic_type": "baremetal"});
        let old = ctx
            .request(Method::POST, "/v1/events", Some("1.53"), Some(json!({"events": [event]})))
            .await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        let reply = ctx.post("/v1/events", json!({"events": [event]})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let minimal = json!({"event": "network.delete_port", "port_id": Uuid::new_v4(),
            "mac_address": "52:54:00:12:34:56", "status": "DOWN", "device_id": null});
        assert_eq!(
            ctx.post("/v1/events", json!({"events": [minimal]})).await.status,
            StatusCode::NO_CONTENT
        );
        let v1 = ctx.request(Method::GET, "/v1", Some("1.54"), None).await;
        assert!(v1.body["events"].is_array());
        assert!(ctx
            .request(Method::GET, "/v1", Some("1.53"), None)
            .await
            .body
            .get("events")
            .is_none());

        let with = |key: &str, value: Value| {
            let mut copy = event.clone();
            copy[key] = value;
            json!({"events": [copy]})
        };
        let without = |key: &str| {
            let mut copy = event.clone();
            copy.as_object_mut().unwrap().remove(key);
            json!({"events": [copy]})
        };
        let cases = [
            (json!({}), "'events' is a required property"),
            (json!({"events": []}), "[] is too short"),
            (json!({"events": {}}), "is not of type 'array'"),
            (json!({"events": [event], "more": 1}), "('more' was unexpected)"),
            (json!({"events": [1]}), "is not of type 'object'"),
            (with("event", json!("network.other")), "'network.other' is not one of"),
            (with("port_id", json!("nope")), "'nope' is not a 'uuid' (port_id)"),
            (with("mac_address", json!("zz:zz")), "is not a 'mac-address'"),
            (with("status", json!(1)), "is not of type 'string' (status)"),
            (with("device_id", json!("x")), "(device_id)"),
            (with("binding:host_id", json!("x")), "(binding:host_id)"),
            (with("binding:vnic_type", json!(5)), "(binding:vnic_type)"),
            (with("colour", json!("red")), "('colour' was unexpected)"),
            (without("event"), "'event' is a required property"),
            (without("port_id"), "'port_id' is a required property"),
            (without("mac_address"), "'mac_address' is a required property"),
            (without("status"), "'status' is a required property"),
        ];
        for (body, message) in cases {
            expect_error(
                &ctx,
                Method::POST,
                "/v1/events",
                Some(body),
                StatusCode::BAD_REQUEST,
                message,
            )
            .await;
        }
        ctx
    })
    .await;
}

#[tokio::test]
async fn drivers_in_detail() {
    for_each_backend(|ctx| async move {
        let listed = ctx.get("/v1/drivers?detail=true").await.body;
        let fake = listed["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "fake-hardware")
            .unwrap()
            .clone();
        assert_eq!(fake["type"], "dynamic");
        assert_eq!(fake["hosts"], json!([ferric_test_utils::HOST]));
        assert_eq!(fake["links"][0]["href"], format!("{}/v1/drivers/fake-hardware", ctx.base));
        assert_eq!(
            fake["properties"][1]["href"],
            format!("{}/drivers/fake-hardware/properties", ctx.base)
        );
        assert_eq!(fake["default_raid_interface"], "no-raid");
        assert_eq!(fake["enabled_raid_interfaces"], json!(["no-raid", "fake"]));
        assert_eq!(fake["default_bios_interface"], "no-bios");
        assert_eq!(fake["default_firmware_interface"], "no-firmware");
        assert_eq!(fake["default_vendor_interface"], "no-vendor");
        assert_eq!(fake["default_console_interface"], "no-console");
        assert_eq!(fake["default_rescue_interface"], "no-rescue");
        assert_eq!(fake["default_network_interface"], "noop");
        assert_eq!(fake["default_power_interface"], "fake");
        let one = ctx.get("/v1/drivers/fake-hardware").await.body;
        assert_eq!(one, fake);
        // Without detail: no interfaces.
        let plain = ctx.get("/v1/drivers").await.body;
        assert!(plain["drivers"][0].get("default_boot_interface").is_none());
        assert_eq!(plain["drivers"][0]["type"], "dynamic");
        // Gating: type and detail from 1.30, firmware from 1.86, bios 1.40.
        let old = ctx.request(Method::GET, "/v1/drivers", Some("1.29"), None).await.body;
        assert!(old["drivers"][0].get("type").is_none());
        assert_eq!(
            ctx.request(Method::GET, "/v1/drivers?detail=true", Some("1.29"), None).await.status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            ctx.request(Method::GET, "/v1/drivers?type=dynamic", Some("1.29"), None).await.status,
            StatusCode::NOT_ACCEPTABLE
        );
        let mid =
            ctx.request(Method::GET, "/v1/drivers/fake-hardware", Some("1.85"), None).await.body;
        assert!(mid.get("default_firmware_interface").is_none());
        assert_eq!(mid["default_bios_interface"], "no-bios");
        let older =
            ctx.request(Method::GET, "/v1/drivers/fake-hardware", Some("1.39"), None).await.body;
        assert!(older.get("default_bios_interface").is_none());
        assert_eq!(older["default_rescue_interface"], "no-rescue");
        // Filters.
        assert_eq!(ctx.get("/v1/drivers?type=classic").await.body, json!({"drivers": []}));
        assert!(!ctx.get("/v1/drivers?type=dynamic").await.body["drivers"]
            .as_array()
            .unwrap()
            .is_empty());
        expect_error(
            &ctx,
            Method::GET,
            "/v1/drivers?type=weird",
            None,
            StatusCode::BAD_REQUEST,
            "\"type\" filter must be one of \"classic\" or \"dynamic\"",
        )
        .await;
        expect_error(
            &ctx,
            Method::GET,
            "/v1/drivers?detail=true&fields=name",
            None,
            StatusCode::BAD_REQUEST,
            "Can not specify ?detail=True and fields in the same request.",
        )
        .await;
        ctx
    })
    .await;
}

/// Portgroup PATCHes racing each other and a VIF attachment to the
/// portgroup (the conductor writes its internal_info) all keep their change.
#[tokio::test]
async fn concurrent_portgroup_writes_are_not_lost() {
    for_each_backend(|ctx| async move {
        let node = uuid_of(&ctx.create_node("race-portgroups").await);
        let group = ctx.post("/v1/portgroups", json!({"node_uuid": node, "name": "bond0"})).await;
        assert_eq!(group.status, StatusCode::CREATED, "{:?}", group.body);
        let group = uuid_of(&group.body);
        port(&ctx, &node, "52:54:00:aa:01:01", json!({"portgroup_uuid": group})).await;
        let path = format!("/v1/portgroups/{group}");
        let vifs = format!("/v1/nodes/{node}/vifs");
        let attach = ctx.post(&vifs, json!({"id": "tenant-vif", "portgroup_uuid": group}));
        let (attach, ()) = tokio::join!(attach, ctx.assert_concurrent_extra_patches(&path, 20));
        assert_eq!(attach.status, StatusCode::NO_CONTENT, "{:?}", attach.body);
        assert_eq!(internal_vif(&ctx, &path).await, json!("tenant-vif"));
        ctx
    })
    .await;
}
