#!/usr/bin/env python3
"""Writes interop/definitions.json: the users, vhosts, permissions and limits the interop
suite needs, in RabbitMQ's definitions format (what `rabbitmqctl export_definitions` and
GET /api/definitions produce).

    python3 interop/make_definitions.py [OUT]      # default: interop/definitions.json

The file is committed; run this again after changing the tables below. Warren imports it
at start-up (.ci/test sets WARREN_DEFINITIONS__IMPORT_FILE); a RabbitMQ gets it through
its management API (see interop/README.md). Like RabbitMQ, Warren then creates no
default user or vhost, so guest and / are in the file.

Passwords are stored as RabbitMQ stores them (rabbit_password_hashing_sha256):
base64(salt ++ sha256(salt ++ password)) with a 4-byte salt. These are throwaway test
users, so the salt is fixed (derived from the user name) and the file is reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

# Every interop-* user logs in with this password (interop-client has none: EXTERNAL).
PASSWORD = "interop"
ALL = (".*", ".*", ".*")

# name -> (password, or None for no password at all; tags; user limits)
USERS = {
    "guest": ("guest", ["administrator"], {}),
    # The user of the bitnami/rabbitmq image, which other projects' client suites assume.
    "user": ("bitnami", ["administrator"], {}),
    # SASL EXTERNAL: the CN of make_certs.sh's client certificate.
    "interop-client": (None, [], {}),
    "interop-perm": (PASSWORD, [], {}),
    "interop-topic": (PASSWORD, [], {}),
    "interop-iso": (PASSWORD, [], {}),
    "interop-vlimit-conn": (PASSWORD, [], {}),
    "interop-vlimit-queues": (PASSWORD, [], {}),
    "interop-ulimit-conn": (PASSWORD, [], {"max-connections": 1}),
    "interop-ulimit-chan": (PASSWORD, [], {"max-channels": 1}),
}

# vhost -> vhost limits
VHOSTS = {
    "/": {},
    "interop-perm": {},
    "interop-noperm": {},  # exists, but interop-perm has no permissions on it
    "interop-topic": {},
    "interop-iso-a": {},
    "interop-iso-b": {},
    "interop-vlimit-conn": {"max-connections": 1},
    "interop-vlimit-queues": {"max-queues": 1},
}

# (user, vhost) -> (configure, write, read)
PERMISSIONS = {
    ("guest", "/"): ALL,
    ("user", "/"): ALL,
    ("interop-client", "/"): ALL,
    # test_access.py's permission table: configure c-* and cr-*, write w-*, read r-* and
    # cr-*.
    ("interop-perm", "interop-perm"): ("^(c|cr)-", "^w-", "^(r|cr)-"),
    ("interop-topic", "interop-topic"): ALL,
    ("interop-iso", "interop-iso-a"): ALL,
    ("interop-iso", "interop-iso-b"): ALL,
    ("interop-vlimit-conn", "interop-vlimit-conn"): ALL,
    ("interop-vlimit-queues", "interop-vlimit-queues"): ALL,
    ("interop-ulimit-conn", "/"): ALL,
    ("interop-ulimit-chan", "/"): ALL,
}
# guest may do everything in the test vhosts too (set-up and clean-up of the tests).
PERMISSIONS.update({("guest", v): ALL for v in VHOSTS if v.startswith("interop-")})

# (user, vhost, exchange) -> (write, read); the broker expands {username} and {vhost}.
TOPIC_PERMISSIONS = {
    ("interop-topic", "interop-topic", "amq.topic"): ("^{username}\\.", "^rd\\."),
}


def password_hash(user: str, password: str | None) -> str:
    if password is None:
        return ""
    salt = hashlib.sha256(b"interop-salt:" + user.encode()).digest()[:4]
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def definitions() -> dict:
    return {
        "rabbit_version": "3.10.8",
        "rabbitmq_version": "3.10.8",
        "users": [
            {"name": name, "password_hash": password_hash(name, password),
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags,
             "limits": limits}
            for name, (password, tags, limits) in USERS.items()
        ],
        "vhosts": [{"name": name} for name in VHOSTS],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": c, "write": w, "read": r}
            for (user, vhost), (c, w, r) in PERMISSIONS.items()
        ],
        "topic_permissions": [
            {"user": user, "vhost": vhost, "exchange": x, "write": w, "read": r}
            for (user, vhost, x), (w, r) in TOPIC_PERMISSIONS.items()
        ],
        "parameters": [
            {"vhost": vhost, "component": "vhost-limits", "name": "limits", "value": limits}
            for vhost, limits in VHOSTS.items() if limits
        ],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "definitions.json")
    with open(out, "w") as f:
        json.dump(definitions(), f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
