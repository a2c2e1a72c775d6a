"""The federation fixtures (a server that federates on loopback and a
scripted remote server), for the erasure tests of what other servers read."""

from tests.federation.conftest import fed_hs, remote, remote_factory  # noqa: F401
