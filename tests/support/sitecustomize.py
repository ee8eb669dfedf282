"""Loaded at interpreter start when this folder is on PYTHONPATH: refuse every outbound connection.

Loopback and Unix sockets stay open (wandb's offline service talks to itself over them); anything else gets
ConnectionRefusedError, so a stage that quietly needs the network fails the test that uses this.
"""

import ipaddress
import os
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _local(address) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = address[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _guarded(original):
    def connect(self, address):
        if not _local(address):
            raise ConnectionRefusedError(f"network disabled in this test: {address}")
        return original(self, address)
    return connect


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)

if os.environ.get("HARNESS_TEST_WRITE_LOG"):  # tests/test_distributed.py: which process wrote what
    import record_writes  # noqa: F401
