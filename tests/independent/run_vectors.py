"""Open every vector in core/tests/vectors with the independent opener, reading as a stream and
with random access, and check the outcome against core/tests/vectors/README.md; then regenerate
the good vectors byte for byte with the independent sealer.
usage: run_vectors.py [VECTORS_DIR]   (default: the repository's core/tests/vectors)"""
import sys
from pathlib import Path

import blake3

import kinko_indep as k

VEC = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "core/tests/vectors"
ID1, ID2 = bytes([1]) * 32, bytes([2]) * 32
SYM = bytes([0x11]) * 32
PASS = "kinko test vector passphrase"


def plaintext(n):
    return blake3.blake3(b"kinko test vector plaintext").digest(length=n)


X_META = dict(name="report.txt", content_type="text/plain", size=10000, modified=1700000000)
# file -> (keys to try, expected plaintext length or error class, expected metadata), for a
# streaming opener (what the README's "expect" column gives)
CASES = {
    "x25519_two_recipients_aes.kinko": [
        (dict(identities=[ID1]), 10000, X_META),
        (dict(identities=[ID2]), 10000, X_META),
        (dict(identities=[bytes([3]) * 32]), "no-identity", None),
    ],
    "passphrase_empty_chacha.kinko": [
        (dict(passphrase=PASS), 0, {}),
        (dict(passphrase=PASS + "x"), "no-identity", None),
    ],
    "symmetric_one_chunk_exact_aes.kinko": [(dict(sym_keys=[SYM]), 4096, dict(size=4096))],
    "bad_header_mac.kinko": [(dict(identities=[ID1]), "header-auth", None)],
    "bad_chunk_1.kinko": [(dict(identities=[ID1]), ("chunk-auth", "1"), None)],
    "bad_truncated.kinko": [(dict(identities=[ID1]), "truncated", None)],
    "bad_trailing_data.kinko": [(dict(identities=[ID1]), ("chunk-auth", "2"), None)],
    "bad_version.kinko": [(dict(identities=[ID1]), "unsupported-version", None)],
}
# what the README says a random-access opener reports instead
RANDOM_ACCESS = {"bad_trailing_data.kinko": [(dict(identities=[ID1]), "trailing-data", None)]}

ok = True
files = sorted(p.name for p in VEC.glob("*.kinko"))
ok &= set(files) == set(CASES)
print(f"{'PASS' if set(files) == set(CASES) else 'FAIL'} the vectors are {sorted(CASES)}")
for name, random_access in [(f, ra) for f in files for ra in (False, True)]:
    data = (VEC / name).read_bytes()
    cases = (RANDOM_ACCESS if random_access else {}).get(name) or CASES.get(name, [({}, "??", None)])
    for keys, want, want_meta in cases:
        try:
            meta, pt = k.open_envelope(data, random_access=random_access, **keys)
            got = f"opened {len(pt)} bytes, meta {meta}"
            good = pt == plaintext(want) if isinstance(want, int) else False
            if good and want_meta is not None:
                good = all(meta.get(f) == v for f, v in want_meta.items())
        except k.KinkoError as ex:
            got = f"error {ex}"
            exp = want if isinstance(want, tuple) else (want, None)
            good = ex.cls == exp[0] and (exp[1] is None or ex.detail == exp[1])
        ok &= good
        how = "random access" if random_access else "stream"
        print(f"{'PASS' if good else 'FAIL'} {name} {list(keys)} {how}: {got}")


def xof_rng(seed):
    """README: the BLAKE3 XOF (unkeyed) of the file name without .kinko, read in order."""
    stream = blake3.blake3(seed).digest(length=1 << 16)
    pos = [0]

    def rand(n):
        pos[0] += n
        return stream[pos[0] - n:pos[0]]
    return rand


REGEN = {
    "x25519_two_recipients_aes": dict(plaintext=plaintext(10000), suite=k.AES, e=12,
                                      recipients=[k.public_key(ID1), k.public_key(ID2)], meta=X_META),
    "passphrase_empty_chacha": dict(plaintext=b"", suite=k.CHACHA, e=16, passphrase=PASS, argon=(64, 1, 1)),
    "symmetric_one_chunk_exact_aes": dict(plaintext=plaintext(4096), suite=k.AES, e=12, sym_keys=[SYM],
                                          meta=dict(size=4096)),
}
for stem, args in REGEN.items():
    want = (VEC / f"{stem}.kinko").read_bytes()
    same = k.seal(rand=xof_rng(stem.encode("ascii")), **args) == want
    ok &= same
    print(f"{'PASS' if same else 'FAIL'} regenerate {stem} byte for byte")

print("ALL OK" if ok else "FAILURES")
sys.exit(0 if ok else 1)
