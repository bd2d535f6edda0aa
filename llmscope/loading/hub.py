"""Is the Hugging Face Hub reachable? One quick connection test, so an offline machine reads its cache at once."""

from __future__ import annotations

from llmscope.progress import reporter

HUB_PROBE_TIMEOUT = 3.0  # seconds to open a TCP connection to the Hub before calling it unreachable
HUB_PROBE_TTL = 60.0  # seconds an answer is reused (one test per command; a notebook re-tests later)
_hub_answers: dict[str, tuple[float, bool]] = {}


def _endpoint_reachable(endpoint: str) -> bool:
    import time

    now = time.monotonic()
    known = _hub_answers.get(endpoint)
    if known is None or now - known[0] > HUB_PROBE_TTL:
        known = _hub_answers[endpoint] = (now, _connects(endpoint))
    return known[1]


def _connects(endpoint: str) -> bool:
    """Can a TCP connection to the Hub endpoint be opened (True when a proxy stands in between)?"""
    import socket
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname
    if not host:
        return True
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return True  # the proxy decides; huggingface_hub goes through it
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """False when the Hub cannot be reached (no network, no DNS), so that hub ids use the cache only.

    Without this check huggingface_hub retries a failed connection five times with back-off, about
    23 s per file, before it falls back to the cache or fails; one quick connection test instead
    makes an offline laptop read its cached models at once, and an uncached model fail at once.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    was = _hub_answers.get(constants.ENDPOINT)
    reachable = _endpoint_reachable(constants.ENDPOINT)
    if not reachable and (was is None or was[1]):  # say it when it becomes so, not on every file
        reporter().notice(f"The Hub ({constants.ENDPOINT}) is not reachable: using the local cache only.")
    return reachable
