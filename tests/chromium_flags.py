"""The flags Debian's chromium is launched with in the browser tests (tests/browser, tests/hub): run as root in a
container, and stay off the network (no sync, no component updates, no QUIC)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
