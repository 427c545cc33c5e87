"""Round trips between the independent code and the real kinko CLI.
usage: roundtrip.py KINKO_BINARY WORKDIR"""
import os
import subprocess
import sys
from pathlib import Path

import kinko_indep as k

KINKO, W = sys.argv[1], Path(sys.argv[2])
W.mkdir(parents=True, exist_ok=True)
PASS = "correct horse battery staple"
ok = True


def run(args, **kw):
    return subprocess.run([KINKO, "-q", *args], capture_output=True, **kw)


def check(label, good, extra=""):
    global ok
    ok &= good
    print(f"{'PASS' if good else 'FAIL'} {label} {extra}")


subprocess.run([KINKO, "keygen", "-o", str(W / "id.txt")], check=True, capture_output=True) \
    if not (W / "id.txt").exists() else None
lines = (W / "id.txt").read_text().splitlines()
sk = k.identity_from_str(next(l for l in lines if l.startswith("AGE-SECRET-KEY-")))
pub = next(l.split(": ")[1] for l in lines if l.startswith("# public key"))
check("identity/recipient encodings agree", k.recipient_from_str(pub) == k.public_key(sk)
      and k.identity_to_str(sk) in lines and k.bech32_encode("age", k.public_key(sk)) == pub)
(W / "pass.txt").write_text(PASS + "\n")

# independent sealer -> kinko open
for size in (0, 1, 4096, 204800, 204801):
    plain = os.urandom(size)
    for suite in (k.AES, k.CHACHA):
        for how in ("x25519", "passphrase"):
            kw = dict(recipients=[k.public_key(sk)]) if how == "x25519" else \
                dict(passphrase=PASS, argon=(1024, 1, 1))
            env = k.seal(plain, suite=suite, e=12, meta=dict(name="f.bin", size=size, modified=-5), **kw)
            (W / "indep.kinko").write_bytes(env)
            args = ["-i", str(W / "id.txt")] if how == "x25519" else ["--passphrase-file", str(W / "pass.txt")]
            r = run(["open", *args, str(W / "indep.kinko"), "-o", "-"])
            check(f"indep seal -> kinko open: {size} B, suite {suite}, 4K chunks, {how}",
                  r.returncode == 0 and r.stdout == plain, f"rc={r.returncode} {r.stderr.decode().strip()[:200]}")

# kinko seal -> independent open
for size in (0, 1, 65536, 204800):
    plain = os.urandom(size)
    (W / "p.bin").write_bytes(plain)
    for suite in ("aes", "chacha"):
        for chunk in ("4K", "64K"):
            r = run(["seal", "-r", pub, "-p", "--passphrase-file", str(W / "pass.txt"), "--suite", suite,
                     "--chunk-size", chunk, str(W / "p.bin"), "-o", str(W / "cli.kinko")])
            assert r.returncode == 0, r.stderr
            env = (W / "cli.kinko").read_bytes()
            for label, kw in (("identity", dict(identities=[sk])), ("passphrase", dict(passphrase=PASS))):
                try:
                    meta, pt = k.open_envelope(env, **kw)
                    check(f"kinko seal -> indep open: {size} B, {suite}, {chunk}, {label}",
                          pt == plain and meta.get("size") == size, str(meta))
                except k.KinkoError as ex:
                    check(f"kinko seal -> indep open: {size} B, {suite}, {chunk}, {label}", False, str(ex))
print("ALL OK" if ok else "FAILURES")
sys.exit(0 if ok else 1)
