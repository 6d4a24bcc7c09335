//! Inspection rules (API 1.96) over real HTTP, on SQLite and PostgreSQL:
//! CRUD, every validation error, sensitive masking, listings and gating,
//! and rules applied by a real agent inspection (a stand-in agent serves
//! the inventory).

#![allow(clippy::unwrap_used)]

use ferric_test_utils::for_each_backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

fn rule_body() -> Value {
    json!({
        "description": "Dell BMC setup",
        "priority": 100,
        "conditions": [
            {"op": "contains", "args": {"value": "{inventory[system_vendor][manufacturer]}", "regex": "(?i)dell"}},
            {"op": "!is-empty", "args": {"value": "{inventory[bmc_address]}"}},
            {"op": "eq", "args": {"values": ["{inventory[system_vendor][product_name]}", "{item}"]},
             "loop": ["PowerEdge R640", "PowerEdge R650"], "multiple": "any"}
        ],
        "actions": [
            {"op": "set-attribute", "args": {"path": "/driver_info/redfish_address", "value": "https://{inventory[bmc_address]}"}},
            {"op": "add-trait", "args": {"name": "CUSTOM_DELL"}},
            {"op": "log", "args": ["matched {node.name}", "warning"]}
        ]
    })
}

#[tokio::test]
async fn gating() {
    for_each_backend(|ctx| async move {
        let old = ctx.request(Method::GET, "/v1/inspection_rules", Some("1.95"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        let old_one = ctx
            .request(
                Method::GET,
                &format!("/v1/inspection_rules/{}", Uuid::new_v4()),
                Some("1.95"),
                None,
            )
            .await;
        assert_eq!(old_one.status, StatusCode::NOT_FOUND);
        let old_post = ctx
            .request(Method::POST, "/v1/inspection_rules", Some("1.95"), Some(rule_body()))
            .await;
        assert_eq!(old_post.status, StatusCode::METHOD_NOT_ALLOWED);
        let old_delete = ctx
            .request(
                Method::DELETE,
                &format!("/v1/inspection_rules/{}", Uuid::new_v4()),
                Some("1.95"),
                None,
            )
            .await;
        assert_eq!(old_delete.status, StatusCode::METHOD_NOT_ALLOWED);
        let v1 = ctx.request(Method::GET, "/v1", Some("1.96"), None).await;
        assert!(v1.body["inspection_rules"].is_array());
        let v1_old = ctx.request(Method::GET, "/v1", Some("1.95"), None).await;
        assert!(v1_old.body.get("inspection_rules").is_none());
        assert_eq!(
            ctx.request(Method::GET, "/v1/inspection_rules", Some("1.96"), None).await.status,
            StatusCode::OK
        );
        assert_eq!(ctx.get("/inspection_rules").await.status, StatusCode::OK);
        ctx
    })
    .await;
}

#[tokio::test]
async fn create_show_patch_delete() {
    for_each_backend(|ctx| async move {
        let created = ctx.post("/v1/inspection_rules", rule_body()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = created.body["uuid"].as_str().unwrap().to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("{}/v1/inspection_rules/{id}", ctx.base).as_str())
        );
        assert_eq!(created.body["phase"], "main");
        assert_eq!(created.body["priority"], 100);
        assert_eq!(created.body["sensitive"], false);
        assert_eq!(created.body["built_in"], false);
        assert_eq!(created.body["conditions"][1]["op"], "!is-empty");
        assert_eq!(created.body["conditions"][2]["multiple"], "any");
        assert_eq!(created.body["conditions"][0].get("loop"), None);
        // The deprecated list form of args comes back named.
        assert_eq!(
            created.body["actions"][2]["args"],
            json!({"msg": "matched {node.name}", "level": "warning"})
        );
        assert_eq!(
            created.body["links"][0]["href"],
            format!("{}/v1/inspection_rules/{id}", ctx.base)
        );

        let shown = ctx.get(&format!("/v1/inspection_rules/{id}")).await;
        assert_eq!(shown.body["actions"], created.body["actions"]);
        let some = ctx.get(&format!("/v1/inspection_rules/{id}?fields=uuid,priority")).await;
        assert_eq!(some.body.as_object().unwrap().len(), 3);
        assert_eq!(
            ctx.get(&format!("/v1/inspection_rules/{id}?fields=bogus")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ctx.get("/v1/inspection_rules/nope").await.status, StatusCode::NOT_FOUND);
        let missing = ctx.get(&format!("/v1/inspection_rules/{}", Uuid::new_v4())).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.fault().starts_with("Inspection rule "), "{}", missing.fault());

        let same = ctx
            .post("/v1/inspection_rules", json!({"uuid": id, "actions": [{"op": "fail", "args": {"msg": "x"}}]}))
            .await;
        assert_eq!(same.status, StatusCode::CONFLICT);

        // Patches are validated like creates.
        let patched = ctx
            .patch(
                &format!("/v1/inspection_rules/{id}"),
                json!([
                    {"op": "replace", "path": "/priority", "value": 5},
                    {"op": "add", "path": "/actions/-", "value": {"op": "set-capability", "args": {"name": "boot_mode", "value": "uefi"}}},
                    {"op": "remove", "path": "/conditions/2"},
                    {"op": "remove", "path": "/description"}
                ]),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["priority"], 5);
        assert_eq!(patched.body["actions"].as_array().unwrap().len(), 4);
        assert_eq!(patched.body["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(patched.body["description"], Value::Null);
        assert!(patched.body["updated_at"].is_string());
        for (ops, message) in [
            (json!([{"op": "replace", "path": "/priority", "value": -1}]), "Priority cannot be negative"),
            (json!([{"op": "replace", "path": "/phase", "value": "early"}]), "Invalid phase: early"),
            (json!([{"op": "replace", "path": "/actions", "value": []}]), "at least one action"),
            (json!([{"op": "remove", "path": "/actions"}]), "actions is required"),
            (json!([{"op": "replace", "path": "/actions/0/op", "value": "explode"}]), "Unsupported action operator: explode"),
            (json!([{"op": "add", "path": "/conditions/0/args/extra", "value": 1}]), "unexpected argument(s): extra"),
            (json!([{"op": "replace", "path": "/built_in", "value": true}]), "internal attribute"),
            (json!([{"op": "replace", "path": "/uuid", "value": Uuid::new_v4()}]), "internal attribute"),
            (json!([{"op": "add", "path": "/scope", "value": "x"}]), "not allowed"),
        ] {
            let reply = ctx.patch(&format!("/v1/inspection_rules/{id}"), ops.clone()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{ops}: {:?}", reply.body);
            assert!(reply.fault().contains(message), "{ops}: {}", reply.fault());
        }
        let unchanged = ctx.get(&format!("/v1/inspection_rules/{id}")).await;
        assert_eq!(unchanged.body["priority"], 5);

        assert_eq!(
            ctx.delete(&format!("/v1/inspection_rules/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            ctx.get(&format!("/v1/inspection_rules/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ctx.delete(&format!("/v1/inspection_rules/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
        ctx
    })
    .await;
}

#[tokio::test]
async fn every_validation_error_has_a_clear_message() {
    for_each_backend(|ctx| async move {
        let log = json!([{"op": "log", "args": {"msg": "m"}}]);
        let with = |conditions: Value, actions: Value| json!({"conditions": conditions, "actions": actions});
        let cases = [
            (json!({}), "actions is required"),
            (json!({"actions": []}), "at least one action"),
            (json!({"actions": {}}), "actions must be a list"),
            (json!({"actions": log, "conditions": {}}), "conditions must be a list"),
            (json!({"actions": log, "bogus": 1}), "Unknown attribute for inspection rule: bogus"),
            (json!({"actions": log, "built_in": true}), "Unknown attribute for inspection rule: built_in"),
            (json!({"actions": log, "phase": "late"}), "Invalid phase: late. Valid phases are: main"),
            (json!({"actions": log, "priority": -1}), "Priority cannot be negative for user-defined rules."),
            (json!({"actions": log, "priority": 10000}), "Priority must be between 0 and 9999"),
            (json!({"actions": log, "priority": "high"}), "Invalid value for priority"),
            (json!({"actions": log, "sensitive": 3}), "Invalid value for sensitive"),
            (json!({"actions": log, "description": "d".repeat(256)}), "longer than 255"),
            (json!({"actions": log, "uuid": "nope"}), "Expected a UUID for uuid"),
            (with(json!([{"op": "bogus", "args": {}}]), log.clone()), "Unsupported condition operator: bogus"),
            (with(json!([{"op": "!!eq", "args": {"values": []}}]), log.clone()), "one leading \"!\""),
            (with(json!([{"args": {}}]), log.clone()), "\"op\" is required"),
            (with(json!(["eq"]), log.clone()), "each condition must be an object"),
            (with(json!([{"op": "eq"}]), log.clone()), "\"args\" is required"),
            (with(json!([{"op": "eq", "args": {}}]), log.clone()), "Invalid parameters for condition operator eq: missing required argument(s): values"),
            (with(json!([{"op": "eq", "args": {"values": [], "x": 1}}]), log.clone()), "unexpected argument(s): x"),
            (with(json!([{"op": "eq", "args": {"values": 1}}]), log.clone()), "values must be a list"),
            (with(json!([{"op": "eq", "args": {"values": [], "force_strings": "yes"}}]), log.clone()), "force_strings must be a boolean"),
            (with(json!([{"op": "in-net", "args": {"address": "10.0.0.1", "subnet": "10.0.0.0/33"}}]), log.clone()), "invalid subnet"),
            (with(json!([{"op": "in-net", "args": {"address": "ten", "subnet": "10.0.0.0/8"}}]), log.clone()), "invalid address"),
            (with(json!([{"op": "matches", "args": {"value": "x", "regex": "[a-"}}]), log.clone()), "invalid regular expression"),
            (with(json!([{"op": "contains", "args": ["x"]}]), log.clone()), "missing: regex"),
            (with(json!([{"op": "is-none", "args": [1, 2]}]), log.clone()), "too many arguments"),
            (with(json!([{"op": "eq", "args": {"values": []}, "multiple": "most"}]), log.clone()), "invalid multiple \"most\""),
            (with(json!([{"op": "eq", "args": {"values": []}, "loop": "abc"}]), log.clone()), "\"loop\" must be a list or an object"),
            (with(json!([]), json!([{"op": "launch", "args": {}}])), "Unsupported action operator: launch"),
            (with(json!([]), json!([{"op": "set-attribute", "args": {"path": "/extra/x"}}])), "Invalid parameters for action operator set-attribute: missing required argument(s): value"),
            (with(json!([]), json!([{"op": "set-attribute", "args": {"path": "", "value": 1}}])), "path must be a non-empty string"),
            (with(json!([]), json!([{"op": "log", "args": {"msg": "m", "level": "loud"}}])), "invalid log level"),
            (with(json!([]), json!([{"op": "add-trait", "args": {"name": "gpu"}}])), "invalid trait \"gpu\""),
            (with(json!([]), json!([{"op": "extend-attribute", "args": {"path": "/extra/l", "value": 1, "unique": "y"}}])), "unique must be a boolean"),
            (with(json!([]), json!([{"op": "api-call", "args": {"url": "file:///etc/passwd"}}])), "http:// or https://"),
            (with(json!([]), json!([{"op": "api-call", "args": {"url": "http://x", "timeout": 0}}])), "timeout must be a number greater than zero"),
            (with(json!([]), json!([{"op": "unset-plugin-data", "args": 5}])), "args must be either a list or dictionary"),
        ];
        for (body, message) in cases {
            let reply = ctx.post("/v1/inspection_rules", body.clone()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(reply.fault().contains(message), "{body}: {}", reply.fault());
        }
        // Several problems are reported together.
        let many = ctx
            .post(
                "/v1/inspection_rules",
                json!({"priority": -5, "phase": "x", "actions": [{"op": "log", "args": {}}]}),
            )
            .await;
        assert_eq!(many.status, StatusCode::BAD_REQUEST);
        assert!(many.fault().starts_with("Multiple validation errors occurred: "), "{}", many.fault());
        assert!(many.fault().contains("Invalid phase") && many.fault().contains("Priority"));
        // Templated arguments are only checked at inspection time.
        let templated = ctx
            .post(
                "/v1/inspection_rules",
                json!({"conditions": [{"op": "in-net", "args": {"address": "{inventory[bmc_address]}", "subnet": "{plugin_data[net]}"}}],
                       "actions": [{"op": "add-trait", "args": {"name": "{item}"}, "loop": ["CUSTOM_A"]}]}),
            )
            .await;
        assert_eq!(templated.status, StatusCode::CREATED, "{:?}", templated.body);
        assert!(ctx.get("/v1/inspection_rules").await.body["inspection_rules"]
            .as_array()
            .unwrap()
            .len()
            == 1);
        ctx
    })
    .await;
}

#[tokio::test]
async fn sensitive_rules_hide_conditions_and_actions() {
    for_each_backend(|ctx| async move {
        let mut body = rule_body();
        body["sensitive"] = json!(true);
        let created = ctx.post("/v1/inspection_rules", body).await;
        assert_eq!(created.status, StatusCode::CREATED);
        assert_eq!(created.body["conditions"], Value::Null);
        assert_eq!(created.body["actions"], Value::Null);
        let id = created.body["uuid"].as_str().unwrap().to_owned();
        let shown = ctx.get(&format!("/v1/inspection_rules/{id}")).await;
        assert_eq!(shown.body["sensitive"], true);
        assert_eq!(shown.body["actions"], Value::Null);
        let listed = ctx.get("/v1/inspection_rules?detail=True").await;
        assert_eq!(listed.body["inspection_rules"][0]["conditions"], Value::Null);
        let selected = ctx.get(&format!("/v1/inspection_rules/{id}?fields=actions")).await;
        assert_eq!(selected.body["actions"], Value::Null);
        // Still stored, and still evaluated.
        let stored = ctx.store.inspection_rule_get(Uuid::parse_str(&id).unwrap()).await.unwrap();
        assert_eq!(stored.actions.len(), 3);

        // The flag cannot be unset, by replace or remove.
        for ops in [
            json!([{"op": "replace", "path": "/sensitive", "value": false}]),
            json!([{"op": "remove", "path": "/sensitive"}]),
        ] {
            let reply = ctx.patch(&format!("/v1/inspection_rules/{id}"), ops).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.fault(), "Inspection rules cannot have the sensitive flag unset.");
        }
        // Other changes work, and do not lose the hidden actions.
        let patched = ctx
            .patch(
                &format!("/v1/inspection_rules/{id}"),
                json!([{"op": "replace", "path": "/description", "value": "secret"}]),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK);
        assert_eq!(patched.body["actions"], Value::Null);
        let stored = ctx.store.inspection_rule_get(Uuid::parse_str(&id).unwrap()).await.unwrap();
        assert_eq!(stored.actions.len(), 3);
        assert_eq!(stored.description.as_deref(), Some("secret"));
        // A plain rule may become sensitive.
        let plain = ctx
            .post("/v1/inspection_rules", json!({"actions": [{"op": "log", "args": {"msg": "m"}}]}))
            .await;
        let plain = plain.body["uuid"].as_str().unwrap().to_owned();
        let hidden = ctx
            .patch(
                &format!("/v1/inspection_rules/{plain}"),
                json!([{"op": "replace", "path": "/sensitive", "value": true}]),
            )
            .await;
        assert_eq!(hidden.body["actions"], Value::Null);
        ctx
    })
    .await;
}

#[tokio::test]
async fn listings() {
    for_each_backend(|ctx| async move {
        for (priority, description) in [(10, "b"), (50, "a"), (0, "c")] {
            let reply = ctx
                .post(
                    "/v1/inspection_rules",
                    json!({"priority": priority, "description": description,
                           "actions": [{"op": "log", "args": {"msg": description}}]}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED);
        }
        let list = ctx.get("/v1/inspection_rules").await;
        let items = list.body["inspection_rules"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        let keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["description", "links", "phase", "priority", "uuid"]);
        let detail = ctx.get("/v1/inspection_rules?detail=true").await;
        assert!(detail.body["inspection_rules"][0]["actions"].is_array());
        let fields = ctx.get("/v1/inspection_rules?fields=priority").await;
        assert_eq!(fields.body["inspection_rules"][0].as_object().unwrap().len(), 2);
        assert_eq!(
            ctx.get("/v1/inspection_rules?fields=priority&detail=true").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ctx.get("/v1/inspection_rules?phase=main").await.body["inspection_rules"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let bad_phase = ctx.get("/v1/inspection_rules?phase=late").await;
        assert_eq!(bad_phase.status, StatusCode::BAD_REQUEST);

        let sorted = ctx.get("/v1/inspection_rules?sort_key=priority&sort_dir=desc").await;
        let priorities: Vec<i64> = sorted.body["inspection_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(priorities, [50, 10, 0]);
        let page = ctx.get("/v1/inspection_rules?sort_key=description&limit=2").await;
        assert_eq!(page.body["inspection_rules"][1]["description"], "b");
        let next = page.body["next"].as_str().unwrap().to_owned();
        assert!(next.contains("sort_key=description"), "{next}");
        let rest = ctx.get(next.trim_start_matches(&ctx.base)).await;
        assert_eq!(rest.body["inspection_rules"][0]["description"], "c");
        assert!(rest.body.get("next").is_none());
        for bad in [
            "sort_key=actions",
            "sort_key=conditions",
            "sort_key=bogus",
            "limit=-1",
            "marker=x",
            "bogus=1",
        ] {
            let reply = ctx.get(&format!("/v1/inspection_rules?{bad}")).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let actions = ctx.get("/v1/inspection_rules?sort_key=actions").await;
        assert!(actions.fault().contains("invalid field for sorting"), "{}", actions.fault());
        ctx
    })
    .await;
}

/// `baremetal inspection rule create --priority 10` (python-ironicclient)
/// sends the priority as the string "10": it is read as the integer, on
/// create and in a patch; a string that is no integer is still refused.
#[tokio::test]
async fn priority_given_as_a_string_of_digits_is_an_integer() {
    for_each_backend(|ctx| async move {
        let log = json!([{"op": "log", "args": {"msg": "m"}}]);
        let created =
            ctx.post("/v1/inspection_rules", json!({"actions": log, "priority": "10"})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["priority"], 10);
        let id = created.body["uuid"].as_str().unwrap().to_owned();

        let patched = ctx
            .patch(
                &format!("/v1/inspection_rules/{id}"),
                json!([{"op": "replace", "path": "/priority", "value": "20"}]),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["priority"], 20);

        for (priority, message) in [
            ("10.5", "Invalid value for priority"),
            ("-1", "Priority cannot be negative"),
            ("10000", "Priority must be between 0 and 9999"),
        ] {
            let reply = ctx
                .post("/v1/inspection_rules", json!({"actions": log, "priority": priority}))
                .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{priority}");
            assert!(reply.fault().contains(message), "{priority}: {}", reply.fault());
        }
        ctx
    })
    .await;
}

/// A stand-in for the ramdisk agent: answers every command with a
/// successful `system.get_inventory` carrying `inventory`. Returns its URL.
async fn fake_agent(inventory: Value) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                // Read the request head and its body (Content-Length).
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = stream.read(&mut chunk).await else { return };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buffer.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = json!({
                    "id": Uuid::new_v4().to_string(),
                    "command_name": "get_inventory",
                    "command_status": "SUCCEEDED",
                    "command_error": null,
                    "command_result": {"inventory": inventory}
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

/// Inspects `node` (agent inspection on fake hardware) with an agent that
/// reports `agent_url`'s inventory: lookup, heartbeat, then the conductor
/// fetches the inventory and applies the rules. Returns the settled node.
async fn inspect_with_agent(
    ctx: &ferric_test_utils::TestContext,
    node: &str,
    mac: &str,
    agent_url: &str,
) -> Value {
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "inspect"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let waiting = ctx.wait_until_idle(node).await;
    assert_eq!(waiting["provision_state"], "inspect wait", "{waiting}");
    let found = ctx.get(&format!("/v1/lookup?addresses={mac}")).await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    let token = found.body["config"]["agent_token"].as_str().unwrap().to_owned();
    let beat = ctx
        .post(
            &format!("/v1/heartbeat/{node}"),
            json!({"callback_url": agent_url, "agent_token": token, "agent_version": "test-agent"}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::ACCEPTED, "{:?}", beat.body);
    ctx.wait_until_idle(node).await
}

#[tokio::test]
async fn rules_apply_after_a_real_agent_inspection() {
    for_each_backend(|ctx| async move {
        let mac = "52:54:00:12:34:56";
        let inventory = json!({
            "cpu": {"architecture": "x86_64", "count": 8},
            "memory": {"physical_mb": 16384},
            "disks": [{"name": "/dev/sda", "size": 107_374_182_400_u64}],
            "interfaces": [{"name": "eth0", "mac_address": mac, "ipv4_address": "192.0.2.10"}],
            "system_vendor": {"manufacturer": "Dell Inc.", "product_name": "PowerEdge R650"},
            "bmc_address": "192.0.2.200"
        });
        let agent = fake_agent(inventory).await;
        let created = ctx
            .post("/v1/nodes", json!({"driver": "fake-hardware", "name": "ruled",
                                      "inspect_interface": "agent"}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let node = created.body["uuid"].as_str().unwrap().to_owned();
        let port = ctx.post("/v1/ports", json!({"address": mac, "node_uuid": node})).await;
        assert_eq!(port.status, StatusCode::CREATED, "{:?}", port.body);
        let port = port.body["uuid"].as_str().unwrap().to_owned();
        assert_eq!(ctx.provision(&node, "manage").await["provision_state"], "manageable");

        let rule = |body: Value| {
            let ctx = &ctx;
            async move {
                let reply = ctx.post("/v1/inspection_rules", body).await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
                reply.body["uuid"].as_str().unwrap().to_owned()
            }
        };
        rule(json!({
            "description": "Dell BMC setup",
            "priority": 100,
            "conditions": [
                {"op": "contains", "args": {"value": "{inventory[system_vendor][manufacturer]}", "regex": "(?i)dell"}},
                {"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}
            ],
            "actions": [
                {"op": "set-attribute", "args": {"path": "/driver_info/redfish_address", "value": "https://{inventory[bmc_address]}"}},
                {"op": "set-attribute", "args": {"path": "extra.model", "value": "{inventory[system_vendor][product_name]}"}},
                {"op": "add-trait", "args": {"name": "CUSTOM_DELL"}},
                {"op": "set-capability", "args": {"name": "boot_mode", "value": "uefi"}},
                {"op": "log", "args": {"msg": "matched {node.name}"}}
            ]
        }))
        .await;
        // Port actions (by port UUID, as in Ironic, or by MAC address) and
        // plugin-data actions.
        rule(json!({
            "priority": 90,
            "conditions": [{"op": "eq", "args": {"values": ["{inventory[interfaces][0][mac_address]}", mac]}}],
            "actions": [
                {"op": "set-port-attribute", "args": {"port_id": port, "path": "extra/nic", "value": "{inventory[interfaces][0][name]}"}},
                {"op": "set-port-attribute", "args": {"port_id": port, "path": "physical_network", "value": "physnet1"}},
                {"op": "set-port-attribute", "args": {"port_id": mac, "path": "local_link_connection.switch_id", "value": "0a:1b:2c:3d:4e:5f"}},
                {"op": "set-port-attribute", "args": {"port_id": mac, "path": "/local_link_connection/port_id", "value": "Ethernet1/{inventory[cpu][count]}"}},
                {"op": "extend-port-attribute", "args": {"port_id": port, "path": "extra/tags", "value": "{item}", "unique": true},
                 "loop": ["fast", "fast", "lab"]},
                {"op": "set-plugin-data", "args": {"path": "location.rack", "value": "r42"}},
                {"op": "extend-plugin-data", "args": {"path": "tags", "value": "{inventory[system_vendor][manufacturer]}"}},
                {"op": "unset-plugin-data", "args": {"path": "agent_version"}}
            ]
        }))
        .await;
        // A rule whose conditions do not hold changes nothing.
        rule(json!({
            "conditions": [{"op": "eq", "args": {"values": ["{inventory[system_vendor][manufacturer]}", "HPE"]}}],
            "actions": [{"op": "add-trait", "args": {"name": "CUSTOM_HPE"}}]
        }))
        .await;

        let inspected = inspect_with_agent(&ctx, &node, mac, &agent).await;
        assert_eq!(inspected["provision_state"], "manageable", "{inspected}");
        assert!(inspected["last_error"].is_null(), "{inspected}");
        assert_eq!(inspected["driver_info"]["redfish_address"], "https://192.0.2.200");
        assert_eq!(inspected["extra"]["model"], "PowerEdge R650");
        assert_eq!(inspected["traits"], json!(["CUSTOM_DELL"]));
        assert_eq!(inspected["properties"]["capabilities"], "boot_mode:uefi");
        // What inspection itself derives is kept alongside.
        assert_eq!(inspected["properties"]["cpu_arch"], "x86_64");
        assert_eq!(inspected["properties"]["memory_mb"], 16384);
        let stored = ctx.get(&format!("/v1/nodes/{node}/inventory")).await;
        assert_eq!(stored.body["inventory"]["bmc_address"], "192.0.2.200");
        assert_eq!(
            stored.body["plugin_data"],
            json!({"source": "ferric-agent", "location": {"rack": "r42"}, "tags": ["Dell Inc."]})
        );
        let shown = ctx.get(&format!("/v1/ports/{port}")).await;
        assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
        assert_eq!(shown.body["extra"], json!({"nic": "eth0", "tags": ["fast", "lab"]}));
        assert_eq!(shown.body["physical_network"], "physnet1");
        assert_eq!(
            shown.body["local_link_connection"],
            json!({"switch_id": "0a:1b:2c:3d:4e:5f", "port_id": "Ethernet1/8"})
        );
        assert_eq!(shown.body["address"], mac, "the port keeps its identity");

        // A port action naming a port the node does not have fails the
        // inspection, as in Ironic, and changes nothing.
        let unknown = Uuid::new_v4().to_string();
        let bad_port = rule(json!({
            "priority": 10,
            "actions": [
                {"op": "set-plugin-data", "args": {"path": "location.rack", "value": "r0"}},
                {"op": "set-port-attribute", "args": {"port_id": unknown, "path": "extra/x", "value": 1}}
            ]
        }))
        .await;
        let failed = inspect_with_agent(&ctx, &node, mac, &agent).await;
        assert_eq!(failed["provision_state"], "inspect failed", "{failed}");
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("Port {unknown} could not be found")), "{error}");
        let stored = ctx.get(&format!("/v1/nodes/{node}/inventory")).await;
        // (Inspection recorded fresh plugin data; no rule action touched it.)
        assert!(stored.body["plugin_data"].get("location").is_none(), "{:?}", stored.body);
        assert_eq!(stored.body["plugin_data"]["agent_version"], "test-agent");
        assert!(ctx.get(&format!("/v1/ports/{port}")).await.body["extra"].get("x").is_none());
        let gone = ctx.delete(&format!("/v1/inspection_rules/{bad_port}")).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        // Changing a port's identity is refused with a clear failure.
        let identity = rule(json!({
            "priority": 10,
            "actions": [{"op": "set-port-attribute", "args": {"port_id": port, "path": "address", "value": "52:54:00:99:99:99"}}]
        }))
        .await;
        let failed = inspect_with_agent(&ctx, &node, mac, &agent).await;
        assert_eq!(failed["provision_state"], "inspect failed", "{failed}");
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("cannot be changed by rules"), "{error}");
        assert_eq!(ctx.get(&format!("/v1/ports/{port}")).await.body["address"], mac);
        let gone = ctx.delete(&format!("/v1/inspection_rules/{identity}")).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);

        // A fail action fails the inspection with its message.
        let fail = rule(json!({
            "priority": 50,
            "conditions": [{"op": "!is-empty", "args": {"value": "{inventory[bmc_address]}"}}],
            "actions": [{"op": "fail", "args": {"msg": "BMC {inventory[bmc_address]} is not allowed"}}]
        }))
        .await;
        let failed = inspect_with_agent(&ctx, &node, mac, &agent).await;
        assert_eq!(failed["provision_state"], "inspect failed", "{failed}");
        // As in Ironic, a fail message is not interpolated.
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("BMC {inventory[bmc_address]} is not allowed"), "{error}");
        assert_eq!(ctx.delete(&format!("/v1/inspection_rules/{fail}")).await.status, StatusCode::NO_CONTENT);

        // A sensitive rule's failure names its operator, never its
        // arguments, in last_error and in the history.
        let secret = Uuid::new_v4().to_string();
        let hidden = rule(json!({
            "priority": 10,
            "sensitive": true,
            "actions": [{"op": "set-port-attribute", "args": {"port_id": secret, "path": "extra/x", "value": 1}}]
        }))
        .await;
        let failed = inspect_with_agent(&ctx, &node, mac, &agent).await;
        assert_eq!(failed["provision_state"], "inspect failed", "{failed}");
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("set-port-attribute") && error.contains(&hidden), "{error}");
        assert!(!error.contains(&secret), "{error}");
        let history = ctx.get(&format!("/v1/nodes/{node}/history?detail=true")).await;
        assert_eq!(history.status, StatusCode::OK, "{:?}", history.body);
        assert!(!history.body.to_string().contains(&secret), "{:?}", history.body);
        assert!(history.body.to_string().contains("set-port-attribute"), "{:?}", history.body);
        assert_eq!(ctx.delete(&format!("/v1/inspection_rules/{hidden}")).await.status, StatusCode::NO_CONTENT);
        ctx
    })
    .await;
}

/// Concurrent PATCHes of one inspection rule all keep their change.
#[tokio::test]
async fn concurrent_patches_are_not_lost() {
    for_each_backend(|ctx| async move {
        let created = ctx.post("/v1/inspection_rules", rule_body()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        // (Inspection rules have no `extra`: each PATCH appends an action.)
        let shown = ctx
            .concurrent_patches(&format!("/v1/inspection_rules/{uuid}"), 20, |index| {
                json!([{"op": "add", "path": "/actions/-",
                        "value": {"op": "add-trait", "args": {"name": format!("CUSTOM_K{index}")}}}])
            })
            .await;
        let actions = shown["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 3 + 20, "{shown}");
        for index in 0..20 {
            let name = json!(format!("CUSTOM_K{index}"));
            assert!(actions.iter().any(|action| action["args"]["name"] == name), "{shown}");
        }
        ctx
    })
    .await;
}
