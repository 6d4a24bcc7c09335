//! Deploy templates (1.55) and runbooks (1.92) over real HTTP, on SQLite
//! and PostgreSQL: CRUD, listing, validation messages, patching, and their
//! use by the conductor (a deploy picking up matching templates, cleaning
//! with a runbook).

#![allow(clippy::unwrap_used)]

use ferric_test_utils::{for_each_backend, Reply, TestContext};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn assert_fault(reply: &Reply, status: StatusCode, needle: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert!(reply.fault().contains(needle), "expected {needle:?} in {:?}", reply.fault());
}

fn template(name: &str) -> Value {
    json!({"name": name, "steps": [{"interface": "raid", "step": "create_configuration",
        "args": {"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}], "bmc_password": "s3cret"},
        "priority": 10}], "extra": {"k": "v"}})
}

fn runbook(name: &str) -> Value {
    json!({"name": name, "steps": [{"interface": "deploy", "step": "erase_devices", "order": 1}]})
}

/// A fake-hardware node in `manageable` (or `available` with `provide`).
async fn node_in(ctx: &TestContext, name: &str, provide: bool) {
    ctx.create_node(name).await;
    ctx.provision(name, "manage").await;
    if provide {
        ctx.provision(name, "provide").await;
    }
}

async fn set_traits(ctx: &TestContext, node: &str, traits: Value) {
    let reply = ctx.put(&format!("/v1/nodes/{node}/traits"), json!({ "traits": traits })).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
}

fn step_names(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}.{}", s["interface"].as_str().unwrap(), s["step"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn deploy_template_crud_listing_and_validation() {
    for_each_backend(|ctx| async move {
        // Gating: hidden before 1.55 (404 for GET, 405 otherwise), linked from /v1 at 1.55.
        let old = ctx.request(Method::GET, "/v1/deploy_templates", Some("1.54"), None).await;
        assert_eq!(old.status, StatusCode::NOT_FOUND);
        let old_post = ctx
            .request(Method::POST, "/v1/deploy_templates", Some("1.54"), Some(template("CUSTOM_A")))
            .await;
        assert_eq!(old_post.status, StatusCode::METHOD_NOT_ALLOWED);
        let v1 = ctx.request(Method::GET, "/v1", Some("1.55"), None).await;
        assert!(v1.body["deploy_templates"].is_array());
        let v1_old = ctx.request(Method::GET, "/v1", Some("1.54"), None).await;
        assert!(v1_old.body.get("deploy_templates").is_none());

        // Create: 201, Location, secrets in args masked.
        let created = ctx.post("/v1/deploy_templates", template("CUSTOM_RAID1")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        assert!(created.header("location").unwrap().ends_with(&format!("/v1/deploy_templates/{uuid}")));
        assert_eq!(created.body["name"], "CUSTOM_RAID1");
        assert_eq!(created.body["steps"][0]["priority"], 10);
        assert_eq!(created.body["steps"][0]["args"]["bmc_password"], "******");
        assert_eq!(created.body["steps"][0]["args"]["logical_disks"][0]["raid_level"], "1");
        assert_eq!(created.body["extra"], json!({"k": "v"}));
        assert!(created.body["links"].is_array());
        // By UUID and by name; `fields`.
        assert_eq!(ctx.get(&format!("/v1/deploy_templates/{uuid}")).await.body["name"], "CUSTOM_RAID1");
        let by_name = ctx.get("/v1/deploy_templates/CUSTOM_RAID1?fields=uuid,steps").await;
        assert_eq!(by_name.status, StatusCode::OK);
        assert_eq!(by_name.body["uuid"], uuid.as_str());
        assert!(by_name.body.get("name").is_none() && by_name.body.get("extra").is_none());
        let bad_field = ctx.get("/v1/deploy_templates/CUSTOM_RAID1?fields=bogus").await;
        assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
        assert_fault(
            &ctx.get("/v1/deploy_templates/CUSTOM_NOPE").await,
            StatusCode::NOT_FOUND,
            "Deploy template CUSTOM_NOPE could not be found",
        );

        // Duplicate names and UUIDs: 409.
        assert_fault(
            &ctx.post("/v1/deploy_templates", template("CUSTOM_RAID1")).await,
            StatusCode::CONFLICT,
            "name CUSTOM_RAID1 already exists",
        );
        let mut same_uuid = template("CUSTOM_OTHER");
        same_uuid["uuid"] = json!(uuid);
        assert_eq!(ctx.post("/v1/deploy_templates", same_uuid).await.status, StatusCode::CONFLICT);

        // Every validation error, with its message.
        let step = |extra: Value| {
            let mut step = json!({"interface": "bios", "step": "apply_configuration", "args": {}, "priority": 5});
            for (key, value) in extra.as_object().unwrap() {
                if value.is_null() {
                    step.as_object_mut().unwrap().remove(key);
                } else {
                    step[key] = value.clone();
                }
            }
            json!({"name": "CUSTOM_V", "steps": [step]})
        };
        let cases = [
            (json!({"name": "raid1", "steps": template("CUSTOM_X")["steps"]}), "must be a valid trait"),
            (json!({"name": "CUSTOM_", "steps": template("CUSTOM_X")["steps"]}), "must be a valid trait"),
            (json!({"steps": template("CUSTOM_X")["steps"]}), "needs a name"),
            (json!({"name": "CUSTOM_V"}), "at least one step"),
            (json!({"name": "CUSTOM_V", "steps": []}), "at least one step"),
            (json!({"name": "CUSTOM_V", "steps": "x"}), "at least one step"),
            (json!({"name": "CUSTOM_V", "steps": [1]}), "Step 0 must be a JSON object"),
            (step(json!({"interface": "boot"})), "invalid interface \"boot\""),
            (step(json!({"interface": null})), "has no \"interface\""),
            (step(json!({"step": null})), "has no \"step\""),
            (step(json!({"step": ""})), "\"step\" must be a non-empty string"),
            (step(json!({"args": null})), "has no \"args\""),
            (step(json!({"args": [1]})), "\"args\" must be a JSON object"),
            (step(json!({"priority": null})), "has no \"priority\""),
            (step(json!({"priority": -1})), "\"priority\" must be a non-negative integer"),
            (step(json!({"priority": "high"})), "\"priority\" must be a non-negative integer"),
            (step(json!({"order": 1})), "unknown field \"order\""),
            (
                json!({"name": "CUSTOM_V", "steps": [
                    {"interface": "bios", "step": "x", "args": {}, "priority": 1},
                    {"interface": "bios", "step": "x", "args": {}, "priority": 2}]}),
                "Duplicate steps",
            ),
            (json!({"name": "CUSTOM_V", "steps": [], "bogus": 1}), "Unknown attribute for deploy template: bogus"),
            (json!({"name": "CUSTOM_V", "steps": template("CUSTOM_X")["steps"], "extra": 1}), "Invalid value for extra"),
        ];
        for (body, message) in cases {
            let reply = ctx.post("/v1/deploy_templates", body.clone()).await;
            assert_fault(&reply, StatusCode::BAD_REQUEST, message);
        }
        // A priority given as digits is accepted, as in Ironic.
        let digits = ctx.post("/v1/deploy_templates", step(json!({"priority": "7"}))).await;
        assert_eq!(digits.status, StatusCode::CREATED, "{:?}", digits.body);
        assert_eq!(digits.body["steps"][0]["priority"], 7);

        // Listing: uuid and name only by default; detail; pagination; sorting.
        ctx.post("/v1/deploy_templates", template("CUSTOM_C")).await;
        let list = ctx.get("/v1/deploy_templates").await;
        assert_eq!(list.status, StatusCode::OK);
        let items = list.body["deploy_templates"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        let mut keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["links", "name", "uuid"]);
        let detail = ctx.get("/v1/deploy_templates?detail=true").await;
        assert!(detail.body["deploy_templates"][0]["steps"].is_array());
        let page = ctx.get("/v1/deploy_templates?limit=2&sort_key=name").await;
        let names: Vec<&str> = page.body["deploy_templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["CUSTOM_C", "CUSTOM_RAID1"]);
        let next = page.body["next"].as_str().unwrap();
        assert!(next.contains("marker=") && next.contains("limit=2"), "{next}");
        let rest = ctx.get(next.trim_start_matches(&ctx.base)).await;
        assert_eq!(rest.body["deploy_templates"].as_array().unwrap().len(), 1);
        assert_eq!(rest.body["deploy_templates"][0]["name"], "CUSTOM_V");
        assert!(rest.body.get("next").is_none());
        assert_fault(
            &ctx.get("/v1/deploy_templates?sort_key=steps").await,
            StatusCode::BAD_REQUEST,
            "invalid field for sorting",
        );
        assert_eq!(ctx.get("/v1/deploy_templates?bogus=1").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(ctx.get("/v1/deploy_templates?fields=owner").await.status, StatusCode::BAD_REQUEST);

        // PATCH: the result is validated as a whole.
        let path = format!("/v1/deploy_templates/{uuid}");
        let renamed = ctx
            .patch(&path, json!([
                {"op": "replace", "path": "/name", "value": "CUSTOM_RAID10"},
                {"op": "add", "path": "/extra/new", "value": 1},
                {"op": "replace", "path": "/steps/0/priority", "value": 20}]))
            .await;
        assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
        assert_eq!(renamed.body["name"], "CUSTOM_RAID10");
        assert_eq!(renamed.body["extra"], json!({"k": "v", "new": 1}));
        assert_eq!(renamed.body["steps"][0]["priority"], 20);
        assert!(renamed.body["updated_at"].is_string());
        // The masked secret was kept, not overwritten with the mask.
        let stored = ctx.store.deploy_template_get(&uuid).await.unwrap();
        assert_eq!(stored.steps[0].args["bmc_password"], "s3cret");
        let bad_patches = [
            (json!([{"op": "replace", "path": "/name", "value": "lower"}]), StatusCode::BAD_REQUEST, "valid trait"),
            (json!([{"op": "remove", "path": "/name"}]), StatusCode::BAD_REQUEST, "needs a name"),
            (json!([{"op": "replace", "path": "/steps/0/priority", "value": "x"}]), StatusCode::BAD_REQUEST, "\"priority\" must be"),
            (json!([{"op": "replace", "path": "/steps/0/interface", "value": "console"}]), StatusCode::BAD_REQUEST, "invalid interface"),
            (json!([{"op": "remove", "path": "/steps/0"}]), StatusCode::BAD_REQUEST, "at least one step"),
            (json!([{"op": "add", "path": "/steps/-", "value": renamed.body["steps"][0]}]), StatusCode::BAD_REQUEST, "Duplicate steps"),
            (json!([{"op": "replace", "path": "/uuid", "value": "x"}]), StatusCode::BAD_REQUEST, "can not be updated"),
            (json!([{"op": "add", "path": "/owner", "value": "x"}]), StatusCode::BAD_REQUEST, "not allowed"),
            (json!([{"op": "replace", "path": "/name", "value": "CUSTOM_C"}]), StatusCode::CONFLICT, "already exists"),
        ];
        for (ops, status, message) in bad_patches {
            assert_fault(&ctx.patch(&path, ops).await, status, message);
        }

        // DELETE by name.
        assert_eq!(ctx.delete("/v1/deploy_templates/CUSTOM_RAID10").await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.delete(&path).await.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn runbook_crud_owner_rules_and_traits() {
    for_each_backend(|ctx| async move {
        let at = |version: &'static str| Some(version);
        // Gating.
        assert_eq!(
            ctx.request(Method::GET, "/v1/runbooks", at("1.91"), None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ctx.request(Method::POST, "/v1/runbooks", at("1.91"), Some(runbook("CUSTOM_A"))).await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(ctx.request(Method::GET, "/v1", at("1.92"), None).await.body["runbooks"].is_array());

        // At 1.92 the name must be a trait; description is newer (406);
        // traits and description are not shown.
        let mut owned = runbook("CUSTOM_CLEANUP");
        owned["owner"] = json!("proj-a");
        owned["extra"] = json!({"a": 1});
        let created = ctx.request(Method::POST, "/v1/runbooks", at("1.92"), Some(owned)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["owner"], "proj-a");
        assert_eq!(created.body["public"], false);
        assert_eq!(created.body["disable_ramdisk"], false);
        assert_eq!(created.body["steps"], json!([{"interface": "deploy", "step": "erase_devices", "args": {}, "order": 1}]));
        assert!(created.body.get("traits").is_none() && created.body.get("description").is_none());
        assert_fault(
            &ctx.request(Method::POST, "/v1/runbooks", at("1.92"), Some(runbook("cleanup"))).await,
            StatusCode::BAD_REQUEST,
            "must be a valid trait",
        );
        let mut described = runbook("CUSTOM_D");
        described["description"] = json!("x");
        assert_eq!(
            ctx.request(Method::POST, "/v1/runbooks", at("1.92"), Some(described)).await.status,
            StatusCode::NOT_ACCEPTABLE
        );
        // From 1.112: logical names, description, traits (the name, for a
        // runbook made by an older client).
        let shown = ctx.get("/v1/runbooks/CUSTOM_CLEANUP").await;
        assert_eq!(shown.body["traits"], json!(["CUSTOM_CLEANUP"]));
        assert_eq!(shown.body["description"], Value::Null);
        let mut logical = runbook("firmware-update.v2");
        logical["description"] = json!("Updates firmware");
        logical["public"] = json!(true);
        let public = ctx.post("/v1/runbooks", logical).await;
        assert_eq!(public.status, StatusCode::CREATED, "{:?}", public.body);
        assert_eq!(public.body["traits"], json!([]));
        assert_eq!(public.body["description"], "Updates firmware");
        assert_fault(&ctx.post("/v1/runbooks", runbook("no spaces")).await, StatusCode::BAD_REQUEST, "Invalid name");
        assert_fault(
            &ctx.post("/v1/runbooks", runbook("CUSTOM_CLEANUP")).await,
            StatusCode::CONFLICT,
            "name CUSTOM_CLEANUP already exists",
        );

        // Step validation: order, not priority.
        let cases = [
            (json!([{"interface": "deploy", "step": "x", "priority": 1}]), "unknown field \"priority\""),
            (json!([{"interface": "deploy", "step": "x"}]), "has no \"order\""),
            (json!([{"interface": "deploy", "step": "x", "order": -2}]), "\"order\" must be a non-negative integer"),
            (json!([{"interface": "storage", "step": "x", "order": 1}]), "invalid interface"),
            (json!([{"interface": "deploy", "step": "x", "args": "a", "order": 1}]), "\"args\" must be a JSON object"),
            (json!([{"interface": "deploy", "step": "x", "order": 1}, {"interface": "deploy", "step": "x", "order": 2}]), "Duplicate steps"),
            (json!([]), "at least one step"),
        ];
        for (steps, message) in cases {
            let reply = ctx.post("/v1/runbooks", json!({"name": "CUSTOM_BAD", "steps": steps})).await;
            assert_fault(&reply, StatusCode::BAD_REQUEST, message);
        }
        let mut long_owner = runbook("CUSTOM_O");
        long_owner["owner"] = json!("x".repeat(256));
        assert_fault(&ctx.post("/v1/runbooks", long_owner).await, StatusCode::BAD_REQUEST, "longer than 255");
        let mut with_traits = runbook("CUSTOM_T");
        with_traits["traits"] = json!(["CUSTOM_T"]);
        assert_fault(&ctx.post("/v1/runbooks", with_traits).await, StatusCode::BAD_REQUEST, "/traits");

        // Listing and the project filter (owned by it, or public).
        ctx.post("/v1/runbooks", json!({"name": "CUSTOM_B", "owner": "proj-b",
            "steps": [{"interface": "deploy", "step": "x", "order": 1}]})).await;
        let all = ctx.get("/v1/runbooks?detail=true").await;
        assert_eq!(all.body["runbooks"].as_array().unwrap().len(), 3);
        let mine = ctx.get("/v1/runbooks?project=proj-a").await;
        let mut names: Vec<&str> =
            mine.body["runbooks"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["CUSTOM_CLEANUP", "firmware-update.v2"]);
        let page = ctx.get("/v1/runbooks?limit=1&fields=name,owner").await;
        assert_eq!(page.body["runbooks"][0], json!({"name": "CUSTOM_CLEANUP", "owner": "proj-a",
            "links": page.body["runbooks"][0]["links"]}));
        assert!(page.body["next"].as_str().unwrap().contains("fields=name%2Cowner"));
        assert_eq!(ctx.get("/v1/runbooks?sort_key=extra").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(ctx.get("/v1/runbooks?sort_key=owner").await.status, StatusCode::OK);

        // PATCH: a public runbook has no owner; making it public clears it.
        let public_path = "/v1/runbooks/firmware-update.v2";
        assert_fault(
            &ctx.patch(public_path, json!([{"op": "add", "path": "/owner", "value": "proj-a"}])).await,
            StatusCode::BAD_REQUEST,
            "There cannot be an owner for a public runbook",
        );
        let owned_now = ctx
            .patch(public_path, json!([
                {"op": "replace", "path": "/public", "value": false},
                {"op": "add", "path": "/owner", "value": "proj-a"}]))
            .await;
        assert_eq!(owned_now.status, StatusCode::OK, "{:?}", owned_now.body);
        assert_eq!(owned_now.body["owner"], "proj-a");
        let public_again =
            ctx.patch(public_path, json!([{"op": "replace", "path": "/public", "value": true}])).await;
        assert_eq!(public_again.body["owner"], Value::Null);
        assert_eq!(public_again.body["public"], true);
        let reordered = ctx
            .patch("/v1/runbooks/CUSTOM_CLEANUP", json!([
                {"op": "add", "path": "/steps/-", "value": {"interface": "raid", "step": "delete_configuration", "order": 0}},
                {"op": "replace", "path": "/disable_ramdisk", "value": true}]))
            .await;
        assert_eq!(reordered.status, StatusCode::OK, "{:?}", reordered.body);
        assert_eq!(reordered.body["steps"][1]["order"], 0);
        assert_eq!(reordered.body["disable_ramdisk"], true);
        for (ops, message) in [
            (json!([{"op": "replace", "path": "/steps/0/order", "value": "first"}]), "\"order\" must be"),
            (json!([{"op": "replace", "path": "/steps", "value": []}]), "at least one step"),
            (json!([{"op": "replace", "path": "/name", "value": "has space"}]), "Invalid name"),
            (json!([{"op": "replace", "path": "/traits", "value": []}]), "can not be updated"),
        ] {
            assert_fault(&ctx.patch("/v1/runbooks/CUSTOM_CLEANUP", ops).await, StatusCode::BAD_REQUEST, message);
        }
        let old_description = ctx
            .request(Method::PATCH, "/v1/runbooks/CUSTOM_CLEANUP", at("1.111"),
                Some(json!([{"op": "replace", "path": "/description", "value": "x"}])))
            .await;
        assert_eq!(old_description.status, StatusCode::BAD_REQUEST);

        // Traits (1.112).
        let traits = "/v1/runbooks/firmware-update.v2/traits";
        assert_eq!(ctx.request(Method::GET, traits, at("1.111"), None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(ctx.put(&format!("{traits}/CUSTOM_FW"), json!(null)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(traits).await.body, json!({"traits": ["CUSTOM_FW"]}));
        assert_fault(&ctx.put(&format!("{traits}/lower"), json!(null)).await, StatusCode::BAD_REQUEST, "Invalid trait");
        assert_eq!(
            ctx.put(traits, json!({"traits": ["CUSTOM_A", "CUSTOM_B", "CUSTOM_A"]})).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(ctx.get(traits).await.body, json!({"traits": ["CUSTOM_A", "CUSTOM_B"]}));
        assert_eq!(ctx.put(traits, json!({"traits": "x"})).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(ctx.delete(&format!("{traits}/CUSTOM_A")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.delete(&format!("{traits}/CUSTOM_NONE")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(traits).await.body, json!({"traits": ["CUSTOM_B"]}));
        assert_eq!(ctx.delete(traits).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(traits).await.body, json!({"traits": []}));

        assert_eq!(ctx.delete(public_path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.get(public_path).await.status, StatusCode::NOT_FOUND);
        ctx
    })
    .await;
}

#[tokio::test]
async fn deploy_runs_the_steps_of_matching_templates() {
    for_each_backend(|ctx| async move {
        node_in(&ctx, "tpl", true).await;
        // A template whose steps run around the driver's deploy.deploy (100)
        // and hold the deploy, so the merged step list can be seen.
        let created = ctx
            .post("/v1/deploy_templates", json!({"name": "CUSTOM_TUNED", "steps": [
                {"interface": "deploy", "step": "hold", "args": {}, "priority": 50},
                {"interface": "management", "step": "clear_job_queue", "args": {"force": true}, "priority": 90}]}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        ctx.post("/v1/deploy_templates", json!({"name": "CUSTOM_UNUSED", "steps": [
            {"interface": "deploy", "step": "hold", "args": {}, "priority": 99}]})).await;

        // Instance traits must also be node traits: refused at request time.
        let instance_traits = json!([{"op": "add", "path": "/instance_info/traits", "value": ["CUSTOM_TUNED"]}]);
        assert_eq!(ctx.patch("/v1/nodes/tpl", instance_traits).await.status, StatusCode::OK);
        assert_fault(
            &ctx.put("/v1/nodes/tpl/states/provision", json!({"target": "active"})).await,
            StatusCode::BAD_REQUEST,
            "missing traits CUSTOM_TUNED",
        );
        set_traits(&ctx, "tpl", json!(["CUSTOM_TUNED", "CUSTOM_UNUSED"])).await;

        let reply = ctx.put("/v1/nodes/tpl/states/provision", json!({"target": "active"})).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let held = ctx.wait_until_idle("tpl").await;
        assert_eq!(held["provision_state"], "deploy hold", "{held}");
        let steps = &held["driver_internal_info"]["deploy_steps"];
        assert_eq!(step_names(steps), ["deploy.deploy", "management.clear_job_queue", "deploy.hold"]);
        assert_eq!(steps[1]["args"], json!({"force": true}));
        assert_eq!(held["deploy_step"]["step"], "hold");
        assert_eq!(held["deploy_step"]["priority"], 50);
        let active = ctx.provision("tpl", "unhold").await;
        assert_eq!(active["provision_state"], "active", "{active}");
        assert_eq!(active["last_error"], Value::Null);

        // The request's deploy_steps override a template's step; priority 0
        // disables the driver's deploy.deploy.
        ctx.provision("tpl", "undeploy").await;
        ctx.patch("/v1/deploy_templates/CUSTOM_TUNED", json!([{"op": "add", "path": "/steps/-",
            "value": {"interface": "deploy", "step": "deploy", "args": {}, "priority": 0}}])).await;
        ctx.patch("/v1/nodes/tpl", json!([{"op": "add", "path": "/instance_info/traits", "value": ["CUSTOM_TUNED"]}])).await;
        let reply = ctx
            .put("/v1/nodes/tpl/states/provision", json!({"target": "active", "deploy_steps": [
                {"interface": "deploy", "step": "hold", "args": {}, "priority": 95}]}))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let held = ctx.wait_until_idle("tpl").await;
        assert_eq!(held["provision_state"], "deploy hold", "{held}");
        assert_eq!(
            step_names(&held["driver_internal_info"]["deploy_steps"]),
            ["deploy.hold", "management.clear_job_queue"]
        );
        assert_eq!(ctx.provision("tpl", "unhold").await["provision_state"], "active");

        // A template step the node's driver does not have fails the deploy
        // with a clear error (fake-hardware's bios interface is no-bios).
        node_in(&ctx, "tpl-bad", true).await;
        ctx.post("/v1/deploy_templates", json!({"name": "CUSTOM_BIOS", "steps": [
            {"interface": "bios", "step": "apply_configuration", "args": {}, "priority": 80}]})).await;
        set_traits(&ctx, "tpl-bad", json!(["CUSTOM_BIOS"])).await;
        ctx.patch("/v1/nodes/tpl-bad", json!([{"op": "add", "path": "/instance_info/traits", "value": ["CUSTOM_BIOS"]}])).await;
        let failed = ctx.provision("tpl-bad", "active").await;
        assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("Matching deploy templates: CUSTOM_BIOS"), "{error}");
        assert!(error.contains("no deploy step \"apply_configuration\" on the bios interface"), "{error}");

        // Deleting a template in use is allowed (as in Ironic): a later
        // deploy simply no longer gets its steps.
        assert_eq!(ctx.delete("/v1/deploy_templates/CUSTOM_BIOS").await.status, StatusCode::NO_CONTENT);
        let retried = ctx.provision("tpl-bad", "active").await;
        assert_eq!(retried["provision_state"], "active", "{retried}");
        ctx
    })
    .await;
}

#[tokio::test]
async fn clean_and_service_with_runbooks() {
    for_each_backend(|ctx| async move {
        node_in(&ctx, "rb", false).await;
        let at_92 = Some("1.92");
        let book = json!({"name": "CUSTOM_SCRUB", "steps": [
            {"interface": "deploy", "step": "hold", "order": 5},
            {"interface": "management", "step": "reset_idrac", "args": {"hard": true}, "order": 1}]});
        let created = ctx.request(Method::POST, "/v1/runbooks", at_92, Some(book)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let clean = |runbook: &str| json!({"target": "clean", "runbook": runbook});
        let provision = "/v1/nodes/rb/states/provision";

        // Not approved until the node has the runbook's name as a trait.
        let refused = ctx.request(Method::PUT, provision, at_92, Some(clean("CUSTOM_SCRUB"))).await;
        assert_fault(&refused, StatusCode::BAD_REQUEST, "is not approved for node");
        // Wrong combinations and unknown runbooks.
        set_traits(&ctx, "rb", json!(["CUSTOM_SCRUB"])).await;
        let both = json!({"target": "clean", "runbook": "CUSTOM_SCRUB",
            "clean_steps": [{"interface": "deploy", "step": "erase_devices"}]});
        assert_fault(&ctx.request(Method::PUT, provision, at_92, Some(both)).await, StatusCode::BAD_REQUEST, "not both");
        let provide = json!({"target": "provide", "runbook": "CUSTOM_SCRUB"});
        assert_fault(
            &ctx.request(Method::PUT, provision, at_92, Some(provide)).await,
            StatusCode::BAD_REQUEST,
            "only valid when setting target provision state to clean or service",
        );
        assert_fault(
            &ctx.request(Method::PUT, provision, at_92, Some(clean("CUSTOM_NONE"))).await,
            StatusCode::NOT_FOUND,
            "Runbook CUSTOM_NONE could not be found",
        );
        assert_eq!(
            ctx.request(Method::PUT, provision, Some("1.91"), Some(clean("CUSTOM_SCRUB"))).await.status,
            StatusCode::NOT_ACCEPTABLE
        );

        // Approved: its steps run in `order` (the hold shows them).
        let accepted = ctx.request(Method::PUT, provision, at_92, Some(clean("CUSTOM_SCRUB"))).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.body);
        let held = ctx.wait_until_idle("rb").await;
        assert_eq!(held["provision_state"], "clean hold", "{held}");
        let steps = &held["driver_internal_info"]["clean_steps"];
        assert_eq!(step_names(steps), ["management.reset_idrac", "deploy.hold"]);
        assert_eq!(steps[0]["args"], json!({"hard": true}));
        assert_eq!(held["clean_step"]["step"], "hold");
        let done = ctx.provision("rb", "unhold").await;
        assert_eq!(done["provision_state"], "manageable", "{done}");
        assert_eq!(done["last_error"], Value::Null);

        // From 1.112 the runbook's own traits approve it (by UUID here).
        let fresh = ctx.post("/v1/runbooks", json!({"name": "quick-scrub", "steps": [
            {"interface": "management", "step": "reset_idrac", "order": 1}]})).await;
        assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
        let fresh_uuid = fresh.body["uuid"].as_str().unwrap().to_owned();
        assert_fault(
            &ctx.put(provision, clean(&fresh_uuid)).await,
            StatusCode::BAD_REQUEST,
            "has no traits",
        );
        ctx.put(&format!("/v1/runbooks/{fresh_uuid}/traits/CUSTOM_OTHER"), json!(null)).await;
        assert_fault(&ctx.put(provision, clean(&fresh_uuid)).await, StatusCode::BAD_REQUEST, "none of the runbook's traits");
        ctx.put(&format!("/v1/runbooks/{fresh_uuid}/traits/CUSTOM_SCRUB"), json!(null)).await;
        assert_eq!(ctx.put(provision, clean(&fresh_uuid)).await.status, StatusCode::ACCEPTED);
        assert_eq!(ctx.wait_until_idle("rb").await["provision_state"], "manageable");

        // A runbook step the driver does not have fails the clean.
        ctx.post("/v1/runbooks", json!({"name": "bios-book", "steps": [
            {"interface": "bios", "step": "apply_configuration", "order": 1}]})).await;
        ctx.put("/v1/runbooks/bios-book/traits/CUSTOM_SCRUB", json!(null)).await;
        assert_eq!(ctx.put(provision, clean("bios-book")).await.status, StatusCode::ACCEPTED);
        let failed = ctx.wait_until_idle("rb").await;
        assert_eq!(failed["provision_state"], "clean failed", "{failed}");
        assert!(
            failed["last_error"].as_str().unwrap().contains("apply_configuration"),
            "{}",
            failed["last_error"]
        );

        // Servicing an active node with a runbook.
        node_in(&ctx, "svc", true).await;
        set_traits(&ctx, "svc", json!(["CUSTOM_SCRUB"])).await;
        assert_eq!(ctx.provision("svc", "active").await["provision_state"], "active");
        let serviced = ctx.put("/v1/nodes/svc/states/provision",
            json!({"target": "service", "runbook": "CUSTOM_SCRUB"})).await;
        assert_eq!(serviced.status, StatusCode::ACCEPTED, "{:?}", serviced.body);
        let held = ctx.wait_until_idle("svc").await;
        assert_eq!(held["provision_state"], "service hold", "{held}");
        assert_eq!(
            step_names(&held["driver_internal_info"]["service_steps"]),
            ["management.reset_idrac", "deploy.hold"]
        );
        assert_eq!(ctx.provision("svc", "unhold").await["provision_state"], "active");
        ctx
    })
    .await;
}

/// Concurrent PATCHes of one deploy template, of one runbook, and
/// concurrent trait additions to the runbook all keep their change.
#[tokio::test]
async fn concurrent_template_and_runbook_writes_are_not_lost() {
    for_each_backend(|ctx| async move {
        let created = ctx.post("/v1/deploy_templates", template("CUSTOM_RACE")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        ctx.assert_concurrent_extra_patches(&format!("/v1/deploy_templates/{uuid}"), 20).await;

        let created = ctx.post("/v1/runbooks", runbook("CUSTOM_RACE")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let uuid = created.body["uuid"].as_str().unwrap().to_owned();
        ctx.assert_concurrent_extra_patches(&format!("/v1/runbooks/{uuid}"), 20).await;

        let adds: Vec<_> = (0..10)
            .map(|index| {
                let client = ctx.client.clone();
                let url = format!("{}/v1/runbooks/{uuid}/traits/CUSTOM_T{index}", ctx.base);
                // (409: every attempt lost its race; the client retries.)
                tokio::spawn(async move {
                    loop {
                        let status = client
                            .put(&url)
                            .header("X-OpenStack-Ironic-API-Version", "latest")
                            .send()
                            .await
                            .unwrap()
                            .status();
                        if status != StatusCode::CONFLICT {
                            return status;
                        }
                    }
                })
            })
            .collect();
        for add in adds {
            assert_eq!(add.await.unwrap(), StatusCode::NO_CONTENT);
        }
        let traits = ctx.get(&format!("/v1/runbooks/{uuid}/traits")).await.body;
        for index in 0..10 {
            let name = format!("CUSTOM_T{index}");
            assert!(traits["traits"].as_array().unwrap().contains(&json!(name)), "{traits}");
        }
        ctx
    })
    .await;
}
