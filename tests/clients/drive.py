#!/usr/bin/env python3
"""Drives the real OpenStack bare metal clients against a ferric server.

Usage (from the venv that tests/clients/requirements.txt was installed in):

    OS_ENDPOINT=http://127.0.0.1:6385 OS_AUTH_TYPE=none python drive.py

The `baremetal` CLI (python-ironicclient) is run as a subprocess from the
directory of the running interpreter (the venv's bin/); openstacksdk is used
in-process. Neither is given a microversion: both negotiate as they do by
default. One line is printed per check; the first failure prints what was
run, with its output, and exits 1.

Both clients go through nodes (create, set/unset, the provision states with
`--wait`), ports, volume connectors and targets, allocations (a failing one,
one holding the node through deploy, released by undeploy), deploy
templates, runbooks (with their traits) and inspection rules.
"""

import json
import os
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

# One CLI invocation, `--wait` included, must finish within this.
COMMAND_TIMEOUT_SECONDS = 300
# How long a `--wait` / `wait=True` may take for one provision state change.
# The CLI polls every 10 s, so a few changes take tens of seconds.
WAIT_SECONDS = 120
MASKED = "******"


class CheckFailed(Exception):
    """A check did not hold; the message says what and why."""


STARTED = time.monotonic()


def ok(description):
    print(f"[{time.monotonic() - STARTED:6.1f}s] ok: {description}", flush=True)


def require(condition, description, detail=""):
    if not condition:
        raise CheckFailed(f"{description}\n{detail}".rstrip())
    ok(description)


def describe_run(result):
    return (
        f"command: {' '.join(result.args)}\n"
        f"exit code: {result.returncode}\n"
        f"stdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )


class BaremetalCli:
    """Runs the `baremetal` command next to this interpreter."""

    def __init__(self):
        self.executable = Path(sys.executable).parent / "baremetal"
        if not self.executable.exists():
            raise CheckFailed(
                f"no `baremetal` command at {self.executable}: run this "
                "script with the python of the venv that has "
                "tests/clients/requirements.txt installed"
            )
        self.env = dict(os.environ)
        # Let the client negotiate the microversion as it does by default.
        self.env.pop("OS_BAREMETAL_API_VERSION", None)
        self.env.pop("OS_CLOUD", None)

    def run(self, *args):
        command = [str(self.executable), *args]
        try:
            return subprocess.run(
                command,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise CheckFailed(
                f"command timed out after {COMMAND_TIMEOUT_SECONDS} s: "
                f"{' '.join(command)}\nstdout:\n{error.stdout}\n"
                f"stderr:\n{error.stderr}"
            ) from error

    def succeed(self, *args):
        """Runs a command that must exit 0; returns the completed process."""
        result = self.run(*args)
        if result.returncode != 0:
            raise CheckFailed(f"command failed\n{describe_run(result)}")
        return result

    def json(self, *args):
        """Runs a command with `-f json` and returns its parsed output."""
        result = self.succeed(*args, "-f", "json")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise CheckFailed(
                f"output is not JSON ({error})\n{describe_run(result)}"
            ) from error

    def fail(self, *args):
        """Runs a command that must exit non-zero; returns the process."""
        result = self.run(*args)
        if result.returncode == 0:
            raise CheckFailed(f"command succeeded but should fail\n{describe_run(result)}")
        return result


def column(row, name):
    """A list row's value, whether the client keyed it by the column title
    ("Provision State") or the field name ("provision_state")."""
    wanted = name.lower().replace(" ", "_")
    for key, value in row.items():
        if key.lower().replace(" ", "_") == wanted:
            return value
    raise CheckFailed(f"no column {name!r} in list row {row!r}")


def find_row(rows, name, value):
    for row in rows:
        if column(row, name) == value:
            return row
    return None


def drive_cli(cli):
    suffix = uuid.uuid4().hex[:8]
    name = f"cli-node-{suffix}"
    new_name = f"cli-node-renamed-{suffix}"
    mac = "52:54:00:12:34:56"

    drivers = cli.json("driver", "list")
    fake = find_row(drivers, "name", "fake-hardware")
    require(fake is not None, "driver list includes fake-hardware", f"drivers: {drivers!r}")
    require(
        bool(column(fake, "hosts")),
        "driver list names a conductor host for fake-hardware",
        f"row: {fake!r}",
    )

    created = cli.json(
        "node", "create",
        "--driver", "fake-hardware",
        "--name", name,
        "--driver-info", "ipmi_address=192.0.2.10",
        "--driver-info", "ipmi_password=secret",
        "--property", "cpus=4",
        "--extra", "team=qa",
    )
    node = created.get("uuid")
    require(bool(node), "node create returns a UUID", f"output: {created!r}")
    require(
        created.get("provision_state") == "enroll",
        "node create: provision state is enroll",
        f"provision_state: {created.get('provision_state')!r}",
    )
    require(
        created.get("driver") == "fake-hardware" and created.get("name") == name,
        "node create: driver and name as given",
        f"output: {created!r}",
    )
    require(
        created.get("properties", {}).get("cpus") == 4,
        "node create: --property cpus=4 stored as the number 4",
        f"properties: {created.get('properties')!r}",
    )

    listed = cli.json("node", "list")
    row = find_row(listed, "UUID", node)
    require(row is not None, "node list includes the node", f"rows: {listed!r}")
    require(
        column(row, "Name") == name and column(row, "Provision State") == "enroll",
        "node list: name and provision state",
        f"row: {row!r}",
    )

    long_rows = cli.json("node", "list", "--long")
    row = find_row(long_rows, "UUID", node)
    require(row is not None, "node list --long includes the node", f"rows: {long_rows!r}")
    require(
        column(row, "Driver") == "fake-hardware"
        and column(row, "Properties").get("cpus") == 4
        and column(row, "Extra") == {"team": "qa"},
        "node list --long: driver, properties and extra",
        f"row: {row!r}",
    )
    require(
        column(row, "Driver Info").get("ipmi_password") == MASKED,
        "node list --long: driver_info password is masked",
        f"driver_info: {column(row, 'Driver Info')!r}",
    )

    shown = cli.json("node", "show", name)
    require(shown.get("uuid") == node, "node show by name finds the node", f"output: {shown!r}")
    require(
        shown.get("driver_info")
        == {"ipmi_address": "192.0.2.10", "ipmi_password": MASKED},
        "node show: driver_info password from node create shows as ******",
        f"driver_info: {shown.get('driver_info')!r}",
    )

    cli.succeed(
        "node", "set", name,
        "--name", new_name,
        "--property", "memory_mb=1024",
        "--extra", "rack=r1",
        "--driver-info", "ipmi_password=changed",
        "--driver-info", "ipmi_username=admin",
    )
    shown = cli.json("node", "show", new_name)
    require(shown.get("uuid") == node, "node set --name: the node is found by its new name")
    require(
        shown.get("properties") == {"cpus": 4, "memory_mb": 1024},
        "node set --property: visible in node show",
        f"properties: {shown.get('properties')!r}",
    )
    require(
        shown.get("extra") == {"team": "qa", "rack": "r1"},
        "node set --extra: visible in node show",
        f"extra: {shown.get('extra')!r}",
    )
    require(
        shown.get("driver_info")
        == {"ipmi_address": "192.0.2.10", "ipmi_password": MASKED, "ipmi_username": "admin"},
        "node set --driver-info: password set later also shows as ******",
        f"driver_info: {shown.get('driver_info')!r}",
    )
    result = cli.fail("node", "show", name)
    require(
        "404" in result.stderr,
        "node show by the old name fails with 404 after the rename",
        describe_run(result),
    )

    cli.succeed("node", "unset", node, "--property", "cpus", "--extra", "team", "--name")
    shown = cli.json("node", "show", node)
    require(
        shown.get("properties") == {"memory_mb": 1024},
        "node unset --property: removed in node show",
        f"properties: {shown.get('properties')!r}",
    )
    require(
        shown.get("extra") == {"rack": "r1"},
        "node unset --extra: removed in node show",
        f"extra: {shown.get('extra')!r}",
    )
    require(
        shown.get("name") is None,
        "node unset --name: the name is gone in node show",
        f"name: {shown.get('name')!r}",
    )

    expect_state(cli, node, ["manage", node, "--wait", str(WAIT_SECONDS)], "manageable")
    expect_state(cli, node, ["provide", node, "--wait", str(WAIT_SECONDS)], "available")

    port = cli.json("port", "create", mac, "--node", node)
    require(
        port.get("address") == mac and port.get("node_uuid") == node,
        "port create: address and node as given",
        f"output: {port!r}",
    )
    port_uuid = port.get("uuid")
    ports = cli.json("port", "list")
    require(
        find_row(ports, "Address", mac) is not None,
        "port list shows the MAC",
        f"rows: {ports!r}",
    )
    ports = cli.json("port", "list", "--node", node)
    row = find_row(ports, "Address", mac)
    require(
        row is not None and column(row, "UUID") == port_uuid,
        "port list --node shows the node's port",
        f"rows: {ports!r}",
    )

    drive_cli_volume(cli, node)
    allocation = drive_cli_allocations(cli, node, suffix)

    shown = expect_state(cli, node, ["deploy", node, "--wait", str(WAIT_SECONDS)], "active")
    require(
        shown.get("power_state") == "power on",
        "node deploy: the node is powered on",
        f"power_state: {shown.get('power_state')!r}",
    )
    require(
        shown.get("allocation_uuid") == allocation,
        "node deploy: the node keeps its allocation",
        f"allocation_uuid: {shown.get('allocation_uuid')!r}",
    )
    # A 409 would be retried by the client for ~10 s; once is enough here.
    result = cli.fail("--max-retries", "0", "node", "delete", node)
    require(
        "409" in result.stderr and f"associated with instance {allocation}" in result.stderr,
        "node delete is refused while the node is active with an instance (409)",
        describe_run(result),
    )
    shown = expect_state(
        cli, node, ["undeploy", node, "--wait", str(WAIT_SECONDS)], "available"
    )
    require(
        shown.get("allocation_uuid") is None and shown.get("instance_uuid") is None,
        "node undeploy: the allocation and instance_uuid are gone from node show",
        f"allocation_uuid: {shown.get('allocation_uuid')!r}, "
        f"instance_uuid: {shown.get('instance_uuid')!r}",
    )
    result = cli.fail("allocation", "show", allocation)
    require(
        "404" in result.stderr,
        "node undeploy: the node's allocation is deleted (allocation show: 404)",
        describe_run(result),
    )

    cli.succeed("port", "delete", port_uuid)
    ports = cli.json("port", "list")
    require(
        find_row(ports, "Address", mac) is None,
        "port delete: the MAC is gone from port list",
        f"rows: {ports!r}",
    )

    cli.succeed("node", "delete", node)
    ok("node delete succeeds on an available node")
    result = cli.fail("node", "show", node)
    require(
        "404" in result.stderr,
        "node show after delete fails with not found",
        describe_run(result),
    )
    listed = cli.json("node", "list")
    require(
        find_row(listed, "UUID", node) is None,
        "node list no longer includes the deleted node",
        f"rows: {listed!r}",
    )

    drive_cli_deploy_templates(cli, suffix)
    drive_cli_runbooks(cli, suffix)
    drive_cli_inspection_rules(cli, suffix)


def drive_cli_volume(cli, node):
    """Volume connectors and targets of an available (powered off) node."""
    iqn = "iqn.2010-10.org.openstack:ferric-cli"
    connector = cli.json(
        "volume", "connector", "create",
        "--node", node,
        "--type", "iqn",
        "--connector-id", iqn,
        "--extra", "team=qa",
    )
    connector_uuid = connector.get("uuid")
    require(
        bool(connector_uuid)
        and connector.get("node_uuid") == node
        and connector.get("type") == "iqn"
        and connector.get("connector_id") == iqn
        and connector.get("extra") == {"team": "qa"},
        "volume connector create: node, type, connector id and extra as given",
        f"output: {connector!r}",
    )
    rows = cli.json("volume", "connector", "list")
    row = find_row(rows, "UUID", connector_uuid)
    require(
        row is not None
        and column(row, "Node UUID") == node
        and column(row, "Connector ID") == iqn,
        "volume connector list: the connector with its node and connector id",
        f"rows: {rows!r}",
    )
    rows = cli.json("volume", "connector", "list", "--node", node, "--long")
    row = find_row(rows, "UUID", connector_uuid)
    require(
        len(rows) == 1 and row is not None and column(row, "Extra") == {"team": "qa"},
        "volume connector list --node --long: only the node's connector, with extra",
        f"rows: {rows!r}",
    )
    cli.succeed(
        "volume", "connector", "set", connector_uuid,
        "--type", "ip",
        "--connector-id", "192.0.2.50",
        "--extra", "rack=r1",
    )
    cli.succeed("volume", "connector", "unset", connector_uuid, "--extra", "team")
    shown = cli.json("volume", "connector", "show", connector_uuid)
    require(
        shown.get("type") == "ip"
        and shown.get("connector_id") == "192.0.2.50"
        and shown.get("extra") == {"rack": "r1"},
        "volume connector set/unset: type, connector id and extra in show",
        f"output: {shown!r}",
    )

    target = cli.json(
        "volume", "target", "create",
        "--node", node,
        "--type", "iscsi",
        "--boot-index", "0",
        "--volume-id", "cli-volume-1",
        "--property", "target_lun=0",
    )
    target_uuid = target.get("uuid")
    require(
        bool(target_uuid)
        and target.get("node_uuid") == node
        and target.get("volume_type") == "iscsi"
        and target.get("boot_index") == 0
        and target.get("volume_id") == "cli-volume-1"
        and target.get("properties") == {"target_lun": 0},
        "volume target create: node, type, boot index, volume id and properties",
        f"output: {target!r}",
    )
    rows = cli.json("volume", "target", "list", "--node", node)
    row = find_row(rows, "UUID", target_uuid)
    require(
        len(rows) == 1 and row is not None and column(row, "Volume ID") == "cli-volume-1",
        "volume target list --node: the node's target",
        f"rows: {rows!r}",
    )
    rows = cli.json("volume", "target", "list", "--long")
    row = find_row(rows, "UUID", target_uuid)
    require(
        row is not None and column(row, "Properties") == {"target_lun": 0},
        "volume target list --long: properties",
        f"rows: {rows!r}",
    )
    cli.succeed(
        "volume", "target", "set", target_uuid,
        "--volume-id", "cli-volume-2",
        "--boot-index", "1",
        "--property", "target_portal=192.0.2.60:3260",
    )
    cli.succeed("volume", "target", "unset", target_uuid, "--property", "target_lun")
    shown = cli.json("volume", "target", "show", target_uuid)
    require(
        shown.get("volume_id") == "cli-volume-2"
        and shown.get("boot_index") == 1
        and shown.get("properties") == {"target_portal": "192.0.2.60:3260"},
        "volume target set/unset: volume id, boot index and properties in show",
        f"output: {shown!r}",
    )

    cli.succeed("volume", "target", "delete", target_uuid)
    cli.succeed("volume", "connector", "delete", connector_uuid)
    for kind, ident in [("target", target_uuid), ("connector", connector_uuid)]:
        result = cli.fail("volume", kind, "show", ident)
        require(
            "404" in result.stderr,
            f"volume {kind} delete: show then fails with 404",
            describe_run(result),
        )
    require(
        cli.json("volume", "connector", "list", "--node", node) == []
        and cli.json("volume", "target", "list", "--node", node) == [],
        "volume connector/target list --node: empty after delete",
    )


def drive_cli_allocations(cli, node, suffix):
    """Allocations against an available node; returns the UUID of the one
    left holding the node (the deploy keeps it, the undeploy deletes it)."""
    resource_class = f"cli-rc-{suffix}"
    trait = f"CUSTOM_CLI_{suffix.upper()}"
    cli.succeed("node", "set", node, "--resource-class", resource_class)
    cli.succeed("node", "add", "trait", node, trait)

    failing = f"cli-alloc-fail-{suffix}"
    result = cli.fail(
        "allocation", "create",
        "--resource-class", f"cli-rc-none-{suffix}",
        "--name", failing,
        "--wait", "30",
    )
    require(
        "failed" in result.stderr,
        "allocation create --wait fails when no node matches",
        describe_run(result),
    )
    shown = cli.json("allocation", "show", failing)
    require(
        shown.get("state") == "error"
        and shown.get("node_uuid") is None
        and "resource class" in (shown.get("last_error") or ""),
        "allocation show: the failed allocation is in error with last_error",
        f"output: {shown!r}",
    )
    failing_uuid = shown.get("uuid")

    name = f"cli-alloc-{suffix}"
    created = cli.json(
        "allocation", "create",
        "--resource-class", resource_class,
        "--trait", trait,
        "--candidate-node", node,
        "--name", name,
        "--extra", "team=qa",
        "--wait", "60",
    )
    allocation = created.get("uuid")
    require(
        bool(allocation)
        and created.get("state") == "active"
        and created.get("node_uuid") == node
        and created.get("resource_class") == resource_class
        and created.get("traits") == [trait]
        and created.get("candidate_nodes") == [node]
        and created.get("last_error") is None,
        "allocation create --wait: active on the candidate node, traits as given",
        f"output: {created!r}",
    )
    shown = cli.json("node", "show", node)
    require(
        shown.get("allocation_uuid") == allocation and shown.get("instance_uuid") == allocation,
        "node show: allocation_uuid (and instance_uuid) name the allocation",
        f"allocation_uuid: {shown.get('allocation_uuid')!r}, "
        f"instance_uuid: {shown.get('instance_uuid')!r}",
    )

    rows = cli.json("allocation", "list")
    row = find_row(rows, "UUID", allocation)
    require(
        row is not None
        and column(row, "Name") == name
        and column(row, "State") == "active"
        and column(row, "Node UUID") == node
        and find_row(rows, "UUID", failing_uuid) is not None,
        "allocation list: both allocations, the active one on the node",
        f"rows: {rows!r}",
    )
    for option, value, wanted in [
        ("--state", "active", allocation),
        ("--state", "error", failing_uuid),
        ("--node", node, allocation),
        ("--resource-class", resource_class, allocation),
    ]:
        rows = cli.json("allocation", "list", option, value)
        require(
            [column(row, "UUID") for row in rows] == [wanted],
            f"allocation list {option} {value}: only the matching allocation",
            f"rows: {rows!r}",
        )
    rows = cli.json("allocation", "list", "--long")
    row = find_row(rows, "UUID", allocation)
    require(
        row is not None
        and column(row, "Traits") == [trait]
        and column(row, "Candidate Nodes") == [node]
        and column(row, "Extra") == {"team": "qa"},
        "allocation list --long: traits, candidate nodes and extra",
        f"row: {row!r}",
    )
    rows = cli.json("allocation", "list", "--fields", "uuid", "state", "last_error")
    row = find_row(rows, "UUID", failing_uuid)
    require(
        row is not None
        and set(row) == {"uuid", "state", "last_error"}
        and "resource class" in (column(row, "Last Error") or ""),
        "allocation list --fields uuid state last_error: only those fields",
        f"rows: {rows!r}",
    )

    new_name = f"cli-alloc-renamed-{suffix}"
    cli.succeed("allocation", "set", name, "--name", new_name, "--extra", "rack=r1")
    shown = cli.json("allocation", "show", new_name)
    require(
        shown.get("uuid") == allocation and shown.get("extra") == {"team": "qa", "rack": "r1"},
        "allocation set --name --extra: found by the new name, extra merged",
        f"output: {shown!r}",
    )
    cli.succeed("allocation", "unset", allocation, "--name", "--extra", "team")
    shown = cli.json("allocation", "show", allocation)
    require(
        shown.get("name") is None and shown.get("extra") == {"rack": "r1"},
        "allocation unset --name --extra: name and the extra key are gone",
        f"output: {shown!r}",
    )

    cli.succeed("allocation", "delete", failing_uuid)
    result = cli.fail("allocation", "show", failing_uuid)
    require(
        "404" in result.stderr,
        "allocation delete: show then fails with 404",
        describe_run(result),
    )
    return allocation


def drive_cli_deploy_templates(cli, suffix):
    name = f"CUSTOM_CLI_DT_{suffix.upper()}"
    new_name = f"CUSTOM_CLI_DT_RENAMED_{suffix.upper()}"
    steps = [
        {"interface": "bios", "step": "apply_configuration",
         "args": {"settings": [{"name": "LogicalProc", "value": "Enabled"}]},
         "priority": 150},
    ]
    new_steps = [
        {"interface": "deploy", "step": "erase_devices", "args": {}, "priority": 10},
    ]
    created = cli.json(
        "deploy", "template", "create", name,
        "--steps", json.dumps(steps),
        "--extra", "team=qa",
    )
    template = created.get("uuid")
    require(
        bool(template)
        and created.get("name") == name
        and created.get("steps") == steps
        and created.get("extra") == {"team": "qa"},
        "deploy template create: name, steps and extra as given",
        f"output: {created!r}",
    )
    rows = cli.json("deploy", "template", "list")
    require(
        find_row(rows, "Name", name) is not None,
        "deploy template list shows the template",
        f"rows: {rows!r}",
    )
    rows = cli.json("deploy", "template", "list", "--long")
    row = find_row(rows, "UUID", template)
    require(
        row is not None
        and column(row, "Steps") == steps
        and column(row, "Extra") == {"team": "qa"},
        "deploy template list --long: steps and extra",
        f"rows: {rows!r}",
    )
    shown = cli.json("deploy", "template", "show", name)
    require(shown.get("uuid") == template, "deploy template show by name", f"output: {shown!r}")

    cli.succeed(
        "deploy", "template", "set", name,
        "--name", new_name,
        "--steps", json.dumps(new_steps),
        "--extra", "rack=r1",
    )
    cli.succeed("deploy", "template", "unset", new_name, "--extra", "team")
    shown = cli.json("deploy", "template", "show", new_name)
    require(
        shown.get("uuid") == template
        and shown.get("steps") == new_steps
        and shown.get("extra") == {"rack": "r1"},
        "deploy template set --name --steps --extra / unset --extra: in show",
        f"output: {shown!r}",
    )

    cli.succeed("deploy", "template", "delete", new_name)
    result = cli.fail("deploy", "template", "show", template)
    require(
        "404" in result.stderr,
        "deploy template delete: show then fails with 404",
        describe_run(result),
    )


def drive_cli_runbooks(cli, suffix):
    name = f"CUSTOM_CLI_RB_{suffix.upper()}"
    new_name = f"CUSTOM_CLI_RB_RENAMED_{suffix.upper()}"
    traits = [f"CUSTOM_RB_A_{suffix.upper()}", f"CUSTOM_RB_B_{suffix.upper()}"]
    steps = [
        {"interface": "deploy", "step": "erase_devices", "args": {}, "order": 1},
        {"interface": "raid", "step": "delete_configuration", "args": {}, "order": 2},
    ]
    created = cli.json(
        "runbook", "create",
        "--name", name,
        "--description", "wipe the disks",
        "--steps", json.dumps(steps),
        "--extra", "team=qa",
    )
    runbook = created.get("uuid")
    require(
        bool(runbook)
        and created.get("name") == name
        and created.get("description") == "wipe the disks"
        and created.get("steps") == steps
        and created.get("extra") == {"team": "qa"}
        and created.get("traits") == []
        and created.get("public") is False
        and created.get("disable_ramdisk") is False,
        "runbook create: name, description, steps, extra; no traits, private",
        f"output: {created!r}",
    )

    cli.succeed("runbook", "trait", "add", name, *traits)
    listed = cli.json("runbook", "trait", "list", name)
    require(
        sorted(column(row, "Traits") for row in listed) == traits,
        "runbook trait add / trait list: both traits",
        f"rows: {listed!r}",
    )
    rows = cli.json("runbook", "list")
    require(
        find_row(rows, "Name", name) is not None,
        "runbook list shows the runbook",
        f"rows: {rows!r}",
    )
    rows = cli.json("runbook", "list", "--long")
    row = find_row(rows, "UUID", runbook)
    require(
        row is not None
        and sorted(column(row, "Traits")) == traits
        and column(row, "Steps") == steps,
        "runbook list --long: traits and steps",
        f"rows: {rows!r}",
    )

    cli.succeed(
        "runbook", "set", name,
        "--name", new_name,
        "--description", "wipe everything",
        "--public",
        "--disable-ramdisk",
        "--extra", "rack=r1",
    )
    shown = cli.json("runbook", "show", new_name)
    require(
        shown.get("uuid") == runbook
        and shown.get("description") == "wipe everything"
        and shown.get("public") is True
        and shown.get("disable_ramdisk") is True
        and shown.get("extra") == {"team": "qa", "rack": "r1"},
        "runbook set --name --description --public --disable-ramdisk --extra: in show",
        f"output: {shown!r}",
    )
    cli.succeed("runbook", "unset", new_name, "--description", "--public", "--extra", "team")
    shown = cli.json("runbook", "show", runbook)
    require(
        shown.get("description") is None
        and shown.get("public") is False
        and shown.get("extra") == {"rack": "r1"},
        "runbook unset --description --public --extra: in show",
        f"output: {shown!r}",
    )
    cli.succeed("runbook", "trait", "remove", new_name, traits[0])
    listed = cli.json("runbook", "trait", "list", new_name)
    require(
        [column(row, "Traits") for row in listed] == traits[1:],
        "runbook trait remove: one trait left",
        f"rows: {listed!r}",
    )

    cli.succeed("runbook", "delete", new_name)
    result = cli.fail("runbook", "show", runbook)
    require(
        "404" in result.stderr,
        "runbook delete: show then fails with 404",
        describe_run(result),
    )


def drive_cli_inspection_rules(cli, suffix):
    description = f"cli-rule-{suffix}"
    conditions = [
        {"op": "eq", "args": {"values": ["{inventory[cpu][count]}", 4]}},
    ]
    actions = [
        {"op": "set-attribute", "args": {"path": "/properties/cpus", "value": 4}},
    ]
    created = cli.json(
        "inspection", "rule", "create",
        "--description", description,
        "--priority", "10",
        "--phase", "main",
        "--conditions", json.dumps(conditions),
        "--actions", json.dumps(actions),
    )
    rule = created.get("uuid")
    require(
        bool(rule)
        and created.get("description") == description
        and created.get("priority") == 10
        and created.get("phase") == "main"
        and created.get("sensitive") is False
        and created.get("conditions") == conditions
        and created.get("actions") == actions,
        "inspection rule create: description, priority 10, phase, conditions, actions",
        f"output: {created!r}",
    )
    secret = cli.json(
        "inspection", "rule", "create",
        "--description", f"{description}-secret",
        "--sensitive", "true",
        "--actions", json.dumps(
            [{"op": "set-attribute",
              "args": {"path": "/driver_info/bmc_password", "value": "hidden"}}]
        ),
    )
    require(
        secret.get("sensitive") is True
        and secret.get("actions") is None
        and secret.get("conditions") is None,
        "inspection rule create --sensitive true: actions and conditions are hidden",
        f"output: {secret!r}",
    )

    rows = cli.json("inspection", "rule", "list")
    row = find_row(rows, "UUID", rule)
    require(
        row is not None
        and column(row, "Description") == description
        and find_row(rows, "UUID", secret.get("uuid")) is not None,
        "inspection rule list: both rules with their descriptions",
        f"rows: {rows!r}",
    )
    rows = cli.json("inspection", "rule", "list", "--long")
    row = find_row(rows, "UUID", rule)
    require(
        row is not None
        and column(row, "Priority") == 10
        and column(row, "Actions") == actions,
        "inspection rule list --long: priority and actions",
        f"rows: {rows!r}",
    )

    cli.succeed(
        "inspection", "rule", "set", rule,
        "--description", f"{description}-changed",
        "--priority", "20",
    )
    shown = cli.json("inspection", "rule", "show", rule)
    require(
        shown.get("description") == f"{description}-changed" and shown.get("priority") == 20,
        "inspection rule set --description --priority: in show",
        f"output: {shown!r}",
    )
    cli.succeed("inspection", "rule", "unset", rule, "--description")
    shown = cli.json("inspection", "rule", "show", rule)
    require(
        shown.get("description") is None,
        "inspection rule unset --description: gone in show",
        f"output: {shown!r}",
    )

    cli.succeed("inspection", "rule", "delete", rule, secret.get("uuid"))
    result = cli.fail("inspection", "rule", "show", rule)
    require(
        "404" in result.stderr,
        "inspection rule delete: show then fails with 404",
        describe_run(result),
    )
    rows = cli.json("inspection", "rule", "list")
    require(
        find_row(rows, "UUID", rule) is None
        and find_row(rows, "UUID", secret.get("uuid")) is None,
        "inspection rule list: both rules gone after delete",
        f"rows: {rows!r}",
    )


def expect_state(cli, node, action, state):
    """Runs `baremetal node <action...>` and checks the resulting state."""
    cli.succeed("node", *action)
    shown = cli.json("node", "show", node)
    require(
        shown.get("provision_state") == state and shown.get("target_provision_state") is None,
        f"node {' '.join(action[:1] + action[2:])}: provision state is {state}",
        f"provision_state: {shown.get('provision_state')!r}, "
        f"target: {shown.get('target_provision_state')!r}, "
        f"last_error: {shown.get('last_error')!r}",
    )
    return shown


def drive_sdk(endpoint):
    import openstack
    from openstack import exceptions

    conn = openstack.connect(
        auth_type="none",
        baremetal_endpoint_override=endpoint,
        load_yaml_config=False,
        load_envvars=False,
    )
    baremetal = conn.baremetal
    suffix = uuid.uuid4().hex[:8]
    name = f"sdk-node-{suffix}"

    node = baremetal.create_node(
        driver="fake-hardware",
        name=name,
        driver_info={"ipmi_password": "sdk-secret"},
        properties={"cpus": 2},
        resource_class=f"sdk-rc-{suffix}",
    )
    require(bool(node.id), "sdk create_node returns a node with an id")
    require(
        node.provision_state == "enroll" and node.driver == "fake-hardware",
        "sdk create_node: enroll state, fake-hardware driver",
        f"node: {node.to_dict()!r}",
    )
    require(
        node.driver_info == {"ipmi_password": MASKED},
        "sdk create_node: driver_info password is masked",
        f"driver_info: {node.driver_info!r}",
    )

    detailed = [found for found in baremetal.nodes(details=True) if found.id == node.id]
    require(len(detailed) == 1, "sdk nodes(details=True) includes the node")
    require(
        detailed[0].name == name
        and detailed[0].properties == {"cpus": 2}
        and detailed[0].driver == "fake-hardware",
        "sdk nodes(details=True): name, properties and driver",
        f"node: {detailed[0].to_dict()!r}",
    )

    def provision(node, target, state):
        node = baremetal.set_node_provision_state(node, target, wait=True, timeout=WAIT_SECONDS)
        fetched = baremetal.get_node(node.id)
        require(
            node.provision_state == state and fetched.provision_state == state,
            f"sdk set_node_provision_state({target!r}, wait=True): {state}",
            f"returned: {node.provision_state!r}, fetched: {fetched.provision_state!r}, "
            f"last_error: {fetched.last_error!r}",
        )
        return fetched

    node = provision(node, "manage", "manageable")
    node = provision(node, "provide", "available")
    drive_sdk_volume(baremetal, node)
    allocation = drive_sdk_allocations(baremetal, node, suffix)
    node = provision(node, "active", "active")
    require(
        node.allocation_id == allocation.id,
        "sdk: the deployed node keeps its allocation",
        f"allocation_id: {node.allocation_id!r}",
    )
    node = provision(node, "deleted", "available")
    require(
        node.allocation_id is None and node.instance_id is None,
        "sdk: after undeploy the node has no allocation_id and no instance_id",
        f"allocation_id: {node.allocation_id!r}, instance_id: {node.instance_id!r}",
    )
    try:
        baremetal.get_allocation(allocation.id)
    except exceptions.NotFoundException:
        ok("sdk: after undeploy get_allocation raises NotFound")
    else:
        raise CheckFailed("sdk get_allocation still finds the allocation after undeploy")

    baremetal.delete_node(node)
    try:
        baremetal.get_node(node.id)
    except exceptions.NotFoundException:
        ok("sdk delete_node: get_node then raises NotFound")
    else:
        raise CheckFailed("sdk get_node still finds the node after delete_node")
    require(
        baremetal.find_node(name) is None,
        "sdk find_node no longer finds the deleted node by name",
    )

    drive_sdk_deploy_templates(baremetal, suffix)
    drive_sdk_runbooks(baremetal, suffix)
    drive_sdk_inspection_rules(baremetal, suffix)


def expect_gone(get, ident, description):
    """Checks that `get(ident)` raises openstacksdk's NotFoundException."""
    from openstack import exceptions

    try:
        get(ident)
    except exceptions.NotFoundException:
        ok(description)
    else:
        raise CheckFailed(f"{description}: still found")


def drive_sdk_volume(baremetal, node):
    """Volume connectors and targets of an available (powered off) node."""
    iqn = "iqn.2010-10.org.openstack:ferric-sdk"
    connector = baremetal.create_volume_connector(
        node_id=node.id, type="iqn", connector_id=iqn, extra={"team": "qa"}
    )
    require(
        bool(connector.id)
        and connector.node_id == node.id
        and connector.type == "iqn"
        and connector.connector_id == iqn,
        "sdk create_volume_connector: node, type and connector id",
        f"connector: {connector.to_dict()!r}",
    )
    listed = list(baremetal.volume_connectors(node=node.id, details=True))
    require(
        [found.id for found in listed] == [connector.id]
        and listed[0].extra == {"team": "qa"},
        "sdk volume_connectors(node=..., details=True): the node's connector with extra",
        f"connectors: {[found.to_dict() for found in listed]!r}",
    )
    updated = baremetal.update_volume_connector(connector, extra={"rack": "r1"})
    require(
        updated.extra == {"rack": "r1"},
        "sdk update_volume_connector: extra replaced",
        f"extra: {updated.extra!r}",
    )
    baremetal.patch_volume_connector(
        connector,
        [
            {"op": "replace", "path": "/type", "value": "ip"},
            {"op": "replace", "path": "/connector_id", "value": "192.0.2.51"},
        ],
    )
    fetched = baremetal.get_volume_connector(connector.id)
    require(
        fetched.type == "ip" and fetched.connector_id == "192.0.2.51",
        "sdk patch_volume_connector then get_volume_connector: type and connector id",
        f"connector: {fetched.to_dict()!r}",
    )

    target = baremetal.create_volume_target(
        node_id=node.id,
        volume_type="iscsi",
        boot_index=0,
        volume_id="sdk-volume-1",
        properties={"target_lun": 0},
    )
    require(
        bool(target.id)
        and target.node_id == node.id
        and target.volume_type == "iscsi"
        and target.boot_index == 0
        and target.volume_id == "sdk-volume-1",
        "sdk create_volume_target: node, type, boot index and volume id",
        f"target: {target.to_dict()!r}",
    )
    listed = list(baremetal.volume_targets(node=node.id, details=True))
    require(
        [found.id for found in listed] == [target.id]
        and listed[0].properties == {"target_lun": 0},
        "sdk volume_targets(node=..., details=True): the node's target with properties",
        f"targets: {[found.to_dict() for found in listed]!r}",
    )
    baremetal.update_volume_target(target, volume_id="sdk-volume-2", boot_index=1)
    baremetal.patch_volume_target(
        target, [{"op": "add", "path": "/properties/target_portal", "value": "192.0.2.61:3260"}]
    )
    fetched = baremetal.get_volume_target(target.id)
    require(
        fetched.volume_id == "sdk-volume-2"
        and fetched.boot_index == 1
        and fetched.properties == {"target_lun": 0, "target_portal": "192.0.2.61:3260"},
        "sdk update/patch_volume_target then get_volume_target: volume id, boot index, "
        "properties",
        f"target: {fetched.to_dict()!r}",
    )

    baremetal.delete_volume_target(target)
    baremetal.delete_volume_connector(connector)
    expect_gone(baremetal.get_volume_target, target.id, "sdk delete_volume_target: NotFound")
    expect_gone(
        baremetal.get_volume_connector, connector.id, "sdk delete_volume_connector: NotFound"
    )


def drive_sdk_allocations(baremetal, node, suffix):
    """Allocations against an available node; returns the allocation left
    holding the node."""
    from openstack import exceptions

    failing = baremetal.create_allocation(
        resource_class=f"sdk-rc-none-{suffix}", name=f"sdk-alloc-fail-{suffix}"
    )
    failing = baremetal.wait_for_allocation(failing, timeout=30, ignore_error=True)
    require(
        failing.state == "error"
        and failing.node_id is None
        and "resource class" in (failing.last_error or ""),
        "sdk wait_for_allocation(ignore_error=True): error with last_error",
        f"allocation: {failing.to_dict()!r}",
    )
    try:
        baremetal.wait_for_allocation(failing, timeout=30)
    except exceptions.ResourceFailure as error:
        require(
            "resource class" in str(error),
            "sdk wait_for_allocation raises ResourceFailure with the last_error",
            f"error: {error}",
        )
    else:
        raise CheckFailed("sdk wait_for_allocation did not raise for a failed allocation")

    name = f"sdk-alloc-{suffix}"
    allocation = baremetal.create_allocation(
        resource_class=node.resource_class,
        candidate_nodes=[node.id],
        name=name,
        extra={"team": "qa"},
    )
    allocation = baremetal.wait_for_allocation(allocation, timeout=60)
    require(
        allocation.state == "active"
        and allocation.node_id == node.id
        and allocation.candidate_nodes == [node.id]
        and allocation.resource_class == node.resource_class,
        "sdk create_allocation + wait_for_allocation: active on the candidate node",
        f"allocation: {allocation.to_dict()!r}",
    )
    fetched = baremetal.get_node(node.id)
    require(
        fetched.allocation_id == allocation.id and fetched.instance_id == allocation.id,
        "sdk get_node: allocation_id (and instance_id) name the allocation",
        f"allocation_id: {fetched.allocation_id!r}, instance_id: {fetched.instance_id!r}",
    )

    everything = {found.id: found for found in baremetal.allocations()}
    require(
        set(everything) >= {allocation.id, failing.id},
        "sdk allocations(): both allocations",
        f"allocations: {list(everything)!r}",
    )
    for query, wanted in [
        ({"state": "error"}, failing.id),
        ({"node": node.id}, allocation.id),
        ({"resource_class": node.resource_class}, allocation.id),
    ]:
        found = [found.id for found in baremetal.allocations(**query)]
        require(
            found == [wanted],
            f"sdk allocations({query!r}): only the matching allocation",
            f"allocations: {found!r}",
        )

    by_name = baremetal.get_allocation(name)
    require(
        by_name.id == allocation.id and by_name.extra == {"team": "qa"},
        "sdk get_allocation by name",
        f"allocation: {by_name.to_dict()!r}",
    )
    new_name = f"sdk-alloc-renamed-{suffix}"
    updated = baremetal.update_allocation(by_name, name=new_name, extra={"rack": "r1"})
    require(
        updated.name == new_name and updated.extra == {"rack": "r1"},
        "sdk update_allocation: name and extra",
        f"allocation: {updated.to_dict()!r}",
    )
    baremetal.patch_allocation(
        allocation.id, [{"op": "add", "path": "/extra/team", "value": "qa"}]
    )
    fetched = baremetal.get_allocation(new_name)
    require(
        fetched.extra == {"rack": "r1", "team": "qa"},
        "sdk patch_allocation then get_allocation by the new name: extra",
        f"extra: {fetched.extra!r}",
    )

    baremetal.delete_allocation(failing)
    expect_gone(baremetal.get_allocation, failing.id, "sdk delete_allocation: NotFound")
    return allocation


def drive_sdk_deploy_templates(baremetal, suffix):
    name = f"CUSTOM_SDK_DT_{suffix.upper()}"
    steps = [{"interface": "deploy", "step": "erase_devices", "args": {}, "priority": 10}]
    new_steps = [
        {"interface": "raid", "step": "delete_configuration", "args": {}, "priority": 20},
    ]
    template = baremetal.create_deploy_template(name=name, steps=steps, extra={"team": "qa"})
    require(
        bool(template.id) and template.name == name and template.steps == steps,
        "sdk create_deploy_template: name and steps",
        f"template: {template.to_dict()!r}",
    )
    listed = {found.id: found for found in baremetal.deploy_templates(details=True)}
    require(
        template.id in listed and listed[template.id].extra == {"team": "qa"},
        "sdk deploy_templates(details=True): the template with extra",
        f"templates: {[found.to_dict() for found in listed.values()]!r}",
    )
    fetched = baremetal.get_deploy_template(name)
    require(fetched.id == template.id, "sdk get_deploy_template by name")

    updated = baremetal.update_deploy_template(fetched, steps=new_steps, extra={"rack": "r1"})
    require(
        updated.steps == new_steps and updated.extra == {"rack": "r1"},
        "sdk update_deploy_template: steps and extra",
        f"template: {updated.to_dict()!r}",
    )
    new_name = f"CUSTOM_SDK_DT_RENAMED_{suffix.upper()}"
    patched = baremetal.patch_deploy_template(
        template.id, [{"op": "replace", "path": "/name", "value": new_name}]
    )
    require(
        patched.name == new_name and baremetal.get_deploy_template(new_name).id == template.id,
        "sdk patch_deploy_template: renamed, found by the new name",
        f"template: {patched.to_dict()!r}",
    )

    baremetal.delete_deploy_template(template.id)
    expect_gone(
        baremetal.get_deploy_template, template.id, "sdk delete_deploy_template: NotFound"
    )


def drive_sdk_runbooks(baremetal, suffix):
    name = f"CUSTOM_SDK_RB_{suffix.upper()}"
    traits = [f"CUSTOM_SDK_A_{suffix.upper()}", f"CUSTOM_SDK_B_{suffix.upper()}"]
    steps = [{"interface": "deploy", "step": "erase_devices", "args": {}, "order": 1}]
    runbook = baremetal.create_runbook(name=name, steps=steps, extra={"team": "qa"})
    require(
        bool(runbook.id)
        and runbook.name == name
        and runbook.steps == steps
        and runbook.traits == []
        and runbook.public is False,
        "sdk create_runbook: name, steps; no traits, private",
        f"runbook: {runbook.to_dict()!r}",
    )
    listed = [found.id for found in baremetal.runbooks(details=True)]
    require(runbook.id in listed, "sdk runbooks(details=True) includes the runbook")

    baremetal.add_runbook_trait(runbook, traits[0])
    require(
        baremetal.get_runbook(name).traits == traits[:1],
        "sdk add_runbook_trait: get_runbook by name shows the trait",
    )
    baremetal.set_runbook_traits(runbook, traits)
    require(
        sorted(baremetal.get_runbook(runbook.id).traits) == traits,
        "sdk set_runbook_traits: both traits",
    )
    baremetal.remove_runbook_trait(runbook, traits[0])
    require(
        baremetal.get_runbook(runbook.id).traits == traits[1:],
        "sdk remove_runbook_trait: one trait left",
    )

    # By id: the object above carries the traits the trait calls changed,
    # which the SDK would send back in the PATCH (refused, as by Ironic).
    updated = baremetal.update_runbook(runbook.id, description="wipe the disks", public=True)
    require(
        updated.description == "wipe the disks" and updated.public is True,
        "sdk update_runbook: description and public",
        f"runbook: {updated.to_dict()!r}",
    )
    patched = baremetal.patch_runbook(
        runbook.id, [{"op": "add", "path": "/extra/rack", "value": "r1"}]
    )
    require(
        patched.extra == {"team": "qa", "rack": "r1"},
        "sdk patch_runbook: extra",
        f"extra: {patched.extra!r}",
    )

    baremetal.delete_runbook(runbook.id)
    expect_gone(baremetal.get_runbook, runbook.id, "sdk delete_runbook: NotFound")


def drive_sdk_inspection_rules(baremetal, suffix):
    description = f"sdk-rule-{suffix}"
    actions = [{"op": "add-trait", "args": {"name": f"CUSTOM_SDK_{suffix.upper()}"}}]
    conditions = [{"op": "!is-empty", "args": {"value": "{inventory[bmc_address]}"}}]
    rule = baremetal.create_inspection_rule(
        description=description, priority=5, actions=actions, conditions=conditions
    )
    require(
        bool(rule.id)
        and rule.description == description
        and rule.priority == 5
        and rule.phase == "main"
        and rule.actions == actions
        and rule.conditions == conditions,
        "sdk create_inspection_rule: description, priority, phase, actions, conditions",
        f"rule: {rule.to_dict()!r}",
    )
    # inspection_rules(details=True) sends `details`, which neither Ironic nor
    # ferric knows (openstacksdk 4.22 bug), so ask for `detail` directly.
    listed = {found.id: found for found in baremetal.inspection_rules(detail=True)}
    require(
        rule.id in listed and listed[rule.id].actions == actions,
        "sdk inspection_rules(detail=True): the rule with its actions",
        f"rules: {[found.to_dict() for found in listed.values()]!r}",
    )
    updated = baremetal.update_inspection_rule(rule, priority=7)
    require(updated.priority == 7, "sdk update_inspection_rule: priority")
    baremetal.patch_inspection_rule(
        rule, [{"op": "replace", "path": "/description", "value": f"{description}-changed"}]
    )
    fetched = baremetal.get_inspection_rule(rule.id)
    require(
        fetched.description == f"{description}-changed" and fetched.priority == 7,
        "sdk patch_inspection_rule then get_inspection_rule: description and priority",
        f"rule: {fetched.to_dict()!r}",
    )
    baremetal.delete_inspection_rule(rule)
    expect_gone(baremetal.get_inspection_rule, rule.id, "sdk delete_inspection_rule: NotFound")


def main():
    endpoint = os.environ.get("OS_ENDPOINT")
    if not endpoint:
        print("FAIL: set OS_ENDPOINT to the ferric API endpoint", file=sys.stderr)
        return 2
    if os.environ.get("OS_AUTH_TYPE") != "none":
        print("FAIL: set OS_AUTH_TYPE=none", file=sys.stderr)
        return 2
    print(f"driving the real clients against {endpoint}", flush=True)
    try:
        drive_cli(BaremetalCli())
        drive_sdk(endpoint)
    except CheckFailed as failure:
        print(f"FAIL: {failure}", flush=True)
        return 1
    except Exception as error:  # e.g. an SDK HttpException: a 4xx/5xx reply
        print(f"FAIL: unexpected {type(error).__name__}: {error}", flush=True)
        traceback.print_exc(file=sys.stdout)
        return 1
    print("all client checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
