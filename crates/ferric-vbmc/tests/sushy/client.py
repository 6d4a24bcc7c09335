"""Drives a ferric-vbmc Redfish service with the sushy library.

Usage: client.py URL USERNAME PASSWORD SYSTEM_ID
Prints one line per step; exits non-zero on the first failure.
"""

import sys

import sushy
from sushy import auth


def main():
    url, username, password, system_id = sys.argv[1:5]
    # sushy refuses username/password next to an explicit auth object:
    # the credentials go into BasicAuth only.
    root = sushy.Sushy(
        url, auth=auth.BasicAuth(username=username, password=password))
    systems = root.get_system_collection().members_identities
    print("systems", sorted(systems))
    system = root.get_system('/redfish/v1/Systems/' + system_id)
    print("identity", system.identity)
    assert system.identity == system_id, system.identity
    print("power", system.power_state)
    assert system.power_state == sushy.PowerState.OFF, system.power_state
    allowed = system.get_allowed_reset_system_values()
    print("allowed resets", sorted(str(value) for value in allowed))
    assert sushy.ResetType.ON in allowed, allowed

    system.reset_system(sushy.ResetType.ON)
    system.refresh()
    print("power", system.power_state)
    assert system.power_state == sushy.PowerState.ON, system.power_state

    system.set_system_boot_options(
        sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE)
    system.refresh()
    print("boot", system.boot.target, system.boot.enabled, system.boot.mode)
    assert system.boot.target == sushy.BootSource.PXE, system.boot.target
    assert system.boot.enabled == sushy.BootSourceOverrideEnabled.ONCE

    system.reset_system(sushy.ResetType.FORCE_OFF)
    system.refresh()
    print("power", system.power_state)
    assert system.power_state == sushy.PowerState.OFF, system.power_state

    # A wrong password is refused.
    try:
        bad = sushy.Sushy(
            url, auth=auth.BasicAuth(username=username, password='wrong-pw'))
        bad.get_system('/redfish/v1/Systems/' + system_id)
    except sushy.exceptions.AccessError as error:
        print("refused", error.status_code)
    else:
        raise AssertionError("a wrong password was accepted")
    print("ok")


if __name__ == '__main__':
    main()
