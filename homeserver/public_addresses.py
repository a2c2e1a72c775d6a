"""Where clients and other servers reach this server, as the well-known
documents announce it (/.well-known/matrix/client and /.well-known/matrix/server).

A server name is `host[:port]`, the host a DNS name, an IPv4 address or an
IPv6 address in brackets. The announced addresses take the server name's host
with the listeners' ports: appending a port to the whole server name gave
`http://127.0.0.1:8448:8008/` for the name `127.0.0.1:8448`, which no client
can connect to. Configured addresses win over the derived ones.
"""

from __future__ import annotations

import ipaddress

import attrs


@attrs.frozen
class PublicAddresses:
    # The client-server API's base URL, ending in "/" (m.homeserver base_url).
    client_base_url: str
    # The host:port other servers connect to (m.server).
    federation_address: str


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """'host[:port]' -> (host as written, IPv6 brackets kept; port or None).

    Raises ValueError for a name that is not a server name.
    """
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise ValueError(f"unclosed IPv6 bracket in {server_name!r}")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"not an IPv6 address in {server_name!r}") from None
    else:
        host, sep, port = server_name.partition(":")
        rest = sep + port
        if not host or any(c.isspace() or c in "/[]@" for c in host):
            raise ValueError(f"not a valid host in {server_name!r}")
    if not rest:
        return host, None
    port_text = rest[1:]
    if not rest.startswith(":") or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a valid port in {server_name!r}")
    return host, int(port_text)


def public_addresses(
    server_name: str,
    *,
    client_port: int,
    federation_port: int,
    public_baseurl: str | None = None,
    federation_public_address: str | None = None,
) -> PublicAddresses:
    """The addresses the well-known documents announce.

    The client base URL is `public_baseurl` (given a trailing "/" if it has
    none), else plain HTTP to the server name's host on the client listener's
    port. The federation address is `federation_public_address`, else the
    server name itself when it has a port (other servers connect there and
    never ask the well-known), else its host on the federation listener's port.
    """
    host, port = split_server_name(server_name)
    if public_baseurl:
        base_url = public_baseurl if public_baseurl.endswith("/") else public_baseurl + "/"
    else:
        base_url = f"http://{host}:{client_port}/"
    if federation_public_address:
        federation = federation_public_address
    elif port is not None:
        federation = server_name
    else:
        federation = f"{host}:{federation_port}"
    return PublicAddresses(base_url, federation)
