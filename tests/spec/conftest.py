"""The scripted remote server of the federation tests signs the walk's server-server calls."""

from tests.federation.conftest import remote, remote_factory  # noqa: F401 (fixtures)
