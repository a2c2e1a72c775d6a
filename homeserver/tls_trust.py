"""Which certificate authorities outbound HTTPS (push gateways, identity
servers, URL previews) trusts.

By default the system's trust store (which honours SSL_CERT_FILE). A
company running its identity server or push gateway behind a private CA
names that CA's bundle in `outbound_tls_ca_file`; it is trusted in
addition to the system's authorities, so public gateways keep working.
Federation has its own rules (`federation_insecure`) and does not use this.

`outbound_tls_insecure` turns checking off altogether, for test harnesses
whose fake servers present certificates no CA vouches for (SyTest's
identity server uses a bare self-signed one, as Synapse there runs with
certificate checks off); never for a real deployment.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def outbound_ssl_context(ca_file: Path | None, *, insecure: bool = False) -> ssl.SSLContext:
    """A verifying client context: system CAs, plus those in `ca_file` if
    given; with `insecure`, one that checks nothing."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context
