#!/usr/bin/env python3
"""Drives the real OpenStack bare metal clients against a ferric server.

Usage (from the venv that tests/clients/requirements.txt was installed in):

    OS_ENDPOINT=http://127.0.0.1:6385 OS_AUTH_TYPE=none python drive.py

The `baremetal` CLI (python-ironicclient) is run as a subprocess from the
directory of the running interpreter (the venv's bin/); openstacksdk is used
in-process. Neither is given a microversion: both negotiate as they do by
default. One line is printed per check; the first failure prints what was
run, with its output, and exits 1.
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

    shown = expect_state(cli, node, ["deploy", node, "--wait", str(WAIT_SECONDS)], "active")
    require(
        shown.get("power_state") == "power on",
        "node deploy: the node is powered on",
        f"power_state: {shown.get('power_state')!r}",
    )
    result = cli.fail("node", "delete", node)
    require(
        "active" in result.stderr,
        "node delete is refused while the node is active",
        describe_run(result),
    )
    expect_state(cli, node, ["undeploy", node, "--wait", str(WAIT_SECONDS)], "available")

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
    name = f"sdk-node-{uuid.uuid4().hex[:8]}"

    node = baremetal.create_node(
        driver="fake-hardware",
        name=name,
        driver_info={"ipmi_password": "sdk-secret"},
        properties={"cpus": 2},
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

    for target, state in [
        ("manage", "manageable"),
        ("provide", "available"),
        ("active", "active"),
        ("deleted", "available"),
    ]:
        node = baremetal.set_node_provision_state(node, target, wait=True, timeout=WAIT_SECONDS)
        fetched = baremetal.get_node(node.id)
        require(
            node.provision_state == state and fetched.provision_state == state,
            f"sdk set_node_provision_state({target!r}, wait=True): {state}",
            f"returned: {node.provision_state!r}, fetched: {fetched.provision_state!r}, "
            f"last_error: {fetched.last_error!r}",
        )

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
