"""Sealing and opening a 256 MiB file from Python keeps the process's peak RSS flat.

Each operation runs in a fresh Python process (the peak RSS, VmHWM, only ever grows, so earlier
tests in this process would hide it). The process loads the library and the key, records its
peak RSS, seals or opens the file, and records it again; the difference is what the operation
added. The figures are printed so they show in the test output."""

import json
import os
import subprocess
import sys
import unittest

from support import TempDirTest, sha256_file

MIB = 1 << 20
SIZE = 256 * MIB
# Generous: the pipeline holds a few 2 MiB batches; anything near the file size is a failure.
BOUND = 64 * MIB

PROBE = r"""
import json, resource, sys
import kinko

def peak_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024

op, src, dst, key_file = sys.argv[1:5]
[identity] = kinko.read_identity_file(key_file)
before = peak_rss()
if op == "seal":
    kinko.seal_file(src, dst, kinko.SealTo(recipients=[identity.to_public()]))
else:
    kinko.open_file(src, dst, kinko.OpenWith(identities=[identity]))
after = peak_rss()
print(json.dumps({"before": before, "after": after}))
"""


class MemoryTests(TempDirTest):
    def probe(self, op, src, dst, key_file):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, op, src, dst, key_file],
            capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        figures = json.loads(out.stdout)
        grown = figures["after"] - figures["before"]
        print(
            "\n  %s of a %d MiB file from Python: peak RSS %.1f MiB before, %.1f MiB after "
            "(+%.1f MiB)" % (op, SIZE // MIB, figures["before"] / MIB, figures["after"] / MIB,
                             grown / MIB),
            file=sys.stderr, flush=True,
        )
        self.assertLess(grown, BOUND, "%s grew the peak RSS by %d bytes" % (op, grown))

    def test_sealing_and_opening_256_mib_keeps_rss_flat(self):
        _, key_file = self.new_identity()
        src = self.path("big.bin")
        with open(src, "wb") as f:
            for _ in range(SIZE // MIB):
                f.write(os.urandom(MIB))
        self.probe("seal", src, self.path("big.kinko"), key_file)
        self.assertGreater(os.path.getsize(self.path("big.kinko")), SIZE)
        self.probe("open", self.path("big.kinko"), self.path("big.out"), key_file)
        self.assertEqual(os.path.getsize(self.path("big.out")), SIZE)
        self.assertEqual(sha256_file(self.path("big.out")), sha256_file(src))


if __name__ == "__main__":
    unittest.main()
