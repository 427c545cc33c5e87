"""Shared helpers for the binding tests: paths handed over by bindings/tests/foreign.rs, the
real `kinko` CLI, temporary directories and test data."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

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


class Server:
    """A real `kinko serve --dev --test-clock` on 127.0.0.1 (a free port), with its own data
    directory, started from the real `kinko` binary. Its log (stderr) goes to a file."""

    def __init__(self, directory):
        require_env()
        self.dir = directory
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
        self.log_path = os.path.join(directory, "server.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [KINKO_BIN, "serve", "--dev", "--test-clock", "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(directory, "data")],
            cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.url = self.admin_token = None
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("URL:"):
                self.url = line[len("URL:"):].strip()
            elif line.startswith("Admin token:"):
                self.admin_token = line[len("Admin token:"):].strip()
            if self.url and self.admin_token:
                break
        if not (self.url and self.admin_token):
            self.stop()
            with open(self.log_path, "rb") as f:
                raise RuntimeError("kinko serve did not start:\n" + f.read().decode())
        # Keep draining stdout so the server never blocks on a full pipe.
        self._drain = threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True)
        self._drain.start()

    def admin(self, method, path, body=None):
        """An admin API call with the standard library (test setup, not the bindings)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.admin_token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def new_member(self, name):
        """Creates a member user and returns one of its API tokens."""
        user = self.admin("POST", "/api/v1/admin/users", {"name": name, "role": "member"})
        issued = self.admin("POST", "/api/v1/admin/users/%s/tokens" % user["id"],
                            {"label": "python tests"})
        return issued["token"]

    def advance(self, seconds):
        """Moves the server's test clock forward."""
        return self.admin("POST", "/api/v1/admin/clock", {"advance": seconds})

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
