"""Shared helpers for the binding tests: paths handed over by bindings/tests/foreign.rs, the
real `kinko` CLI, temporary directories and test data."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import kinko

KINKO_BIN = os.environ.get("KINKO_BIN")
VECTORS = os.environ.get("KINKO_VECTORS")

# Identity 1 of the envelope test vectors (secret bytes 01 x 32, core/tests/vectors/README.md).
VECTOR_IDENTITY_1 = (
    "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZ9K4CN"
)
VECTOR_PASSPHRASE = "kinko test vector passphrase"


def require_env():
    """Fails (never skips) when the suite is run without the paths foreign.rs passes."""
    missing = [n for n in ("KINKO_BIN", "KINKO_VECTORS") if not os.environ.get(n)]
    if missing:
        raise RuntimeError(
            "run these tests through `cargo test -p kinko-ffi` (missing %s)" % ", ".join(missing)
        )


def data(n, seed=b"kinko"):
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(seed + counter.to_bytes(8, "big"), digest_size=64).digest()
        counter += 1
    return bytes(out[:n])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return h.hexdigest()
            h.update(block)


def run_kinko(*args, input=None, env=None):
    """Runs the real `kinko` binary and returns the CompletedProcess (never raises)."""
    require_env()
    full_env = {k: v for k, v in os.environ.items() if k != "KINKO_PASSPHRASE"}
    if env:
        full_env.update(env)
    return subprocess.run(
        [KINKO_BIN, *args], input=input, capture_output=True, env=full_env, timeout=300
    )


class TempDirTest(unittest.TestCase):
    """A test with its own temporary directory, `self.dir`, and a `path(name)` helper."""

    def setUp(self):
        require_env()
        base = os.environ.get("KINKO_TEST_TMP")
        self.dir = tempfile.mkdtemp(prefix="kinko-py-", dir=base)
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, content):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(content)
        return p

    def read(self, name_or_path):
        p = name_or_path if os.path.isabs(name_or_path) else self.path(name_or_path)
        with open(p, "rb") as f:
            return f.read()

    def assertNoOutput(self, name):
        """The output file does not exist, and no temporary file is left beside it."""
        self.assertFalse(os.path.exists(self.path(name)), "%s exists" % name)
        leftovers = [n for n in os.listdir(self.dir) if n.startswith(".kinko-")]
        self.assertEqual(leftovers, [], "temporary files left behind")

    def new_identity(self, name="id.txt"):
        """A fresh identity, also written to an identity file; returns (identity, file path)."""
        identity = kinko.Identity.generate()
        p = self.path(name)
        identity.write_file(p, "2026-01-01T00:00:00Z")
        return identity, p
