"""Differential test: damaged/unusual envelopes, independent opener vs `kinko open` exit codes.
Exits non-zero if any case differs (or a case's class is not the one FORMAT.md names, where
EXPECT below gives it).
usage: diff_errors.py KINKO_BINARY WORKDIR   (WORKDIR/id.txt is made if missing)"""
import os
import subprocess
import sys
from pathlib import Path

import kinko_indep as k

KINKO, W = sys.argv[1], Path(sys.argv[2])
W.mkdir(parents=True, exist_ok=True)
# `kinko open` exit codes (FORMAT.md "Errors"); truncated header and truncated share 11.
EXIT = {"ok": 0, "not-kinko": 4, "unsupported-version": 5, "unsupported-suite": 6, "malformed-header": 7,
        "no-identity": 8, "header-auth": 9, "chunk-auth": 10, "truncated-header": 11, "truncated": 11,
        "trailing-data": 12, "argon2-bounds": 13, "size-mismatch": 14}
if not (W / "id.txt").exists():
    subprocess.run([KINKO, "keygen", "-o", str(W / "id.txt")], check=True, capture_output=True)
sk = k.identity_from_str(next(l for l in (W / "id.txt").read_text().splitlines() if l.startswith("AGE-")))
pk = k.public_key(sk)
FIXED = bytes(range(32)) + bytes(range(100, 116))  # DEK, payload nonce for every case
C = 4096


def rng():
    stream = iter([FIXED[:32], FIXED[32:]])
    return lambda n: next(stream, None) or os.urandom(n)


def env(size=10000, meta="size", **kw):
    m = dict(size=size) if meta == "size" else {}
    return k.seal(bytes(size), e=12, recipients=[pk], meta=m, rand=rng(), **kw)


def hdr_len(e):
    return k.parse_header(e)["header_len"]


def remac(e, edit):
    """apply edit(bytearray) to the header-without-MAC, recompute the MAC; header length unchanged."""
    n = hdr_len(e)
    h = bytearray(e[:n - 32])
    edit(h)
    return bytes(h) + k.keyed(k.derive("header mac key", FIXED[:32]), bytes(h)) + e[n:]


def nonce(i, last):
    return i.to_bytes(11, "big") + bytes([last])


def reseal(flags, sizes):
    """chunk_hook: reseal chunks of given plaintext sizes with given last flags."""
    return lambda cipher, _: [cipher.encrypt(nonce(i, f), bytes(s), b"") for i, (f, s) in enumerate(zip(flags, sizes))]


e0 = env()
e4k = env(4096)
n0 = hdr_len(e0)
m_at = n0 - 32 - 45  # offset of M in e0 (metadata = 4 + 12 + 13 + 16 bytes)
assert int.from_bytes(e0[m_at:m_at + 4], "big") == 41
other = k.X25519PrivateKey.generate().private_bytes_raw()
decoy = k.seal(b"", recipients=[pk], rand=os.urandom, e=12)  # a stanza for pk wrapping another DEK
decoy_stanza = k.parse_header(decoy)["stanzas"][0]
pass_bad = lambda m, t, p: (lambda st: st + [(k.K_PASS, os.urandom(16) + m.to_bytes(4, "big") + t.to_bytes(4, "big")
                                               + p.to_bytes(4, "big") + os.urandom(48))])

CASES = {
    # payload
    "full final chunk + 1 byte": e4k + b"\0",
    "full final chunk + 16 bytes": e4k + bytes(16),
    "full final chunk + full chunk of zeros": e4k + bytes(C + 16),
    "header only, no payload": e0[:n0],
    "final short chunk cut inside its tag (5 B left)": e0[:n0 + 2 * (C + 16) + 5],
    "cut mid chunk 1 (size in meta)": e0[:n0 + C + 16 + 100],
    "cut mid chunk 1 (no size)": env(meta=None)[:n0 - 8 + C + 16 + 100],
    "cut at chunk boundary (no size)": env(meta=None)[:n0 - 8 + 2 * (C + 16)],
    "empty last chunk at index 1": env(4096, chunk_hook=reseal([0, 1], [C, 0])),
    "empty last chunk at index 1 (no size)": env(4096, meta=None, chunk_hook=reseal([0, 1], [C, 0])),
    "chunk 0 (full) sealed last, then chunk 1": env(8192, chunk_hook=reseal([1, 1], [C, C])),
    "short final chunk sealed not-last": env(5000, chunk_hook=reseal([0, 0], [C, 904])),
    "size says 5000, payload 4096": env(4096, meta_plain=k.encode_metadata(size=5000)),
    "size says 4096, payload 8192": env(8192, meta_plain=k.encode_metadata(size=4096)),
    "empty chunk sealed not-last at index 1": env(4096, meta=None, chunk_hook=reseal([0, 0], [C, 0])),
    "empty chunk 0 sealed not-last (empty file)": env(0, chunk_hook=reseal([0], [0])),
    "size says 10000, payload 4096 cut mid chunk 1": env(8192, meta_plain=k.encode_metadata(size=10000))[:n0 + C + 16 + 50],
    "chunks swapped": (lambda e: e[:n0] + e[n0 + C + 16:n0 + 2 * (C + 16)] + e[n0:n0 + C + 16] + e[n0 + 2 * (C + 16):])(e0),
    # fixed header
    "empty file": b"",
    "1 byte, first of the magic": e0[:1],
    "1 byte, not the magic": b"X",
    "5 bytes of magic": e0[:5],
    "3 bytes of magic then a wrong byte, 4 B": e0[:3] + b"X",
    "magic only": e0[:8],
    "fixed part only (28 B)": e0[:28],
    "cut inside stanza": e0[:100],
    "cut inside metadata": e0[:n0 - 40],
    "suite 3": e0[:9] + b"\3" + e0[10:],
    "suite 3 and version 2": e0[:8] + b"\2\3" + e0[10:],
    "suite 3, cut after the suite": e0[:9] + b"\3",
    "flags 01, cut after the flags": e0[:11] + b"\1",
    "chunk exponent 11": e0[:10] + b"\x0b" + e0[11:],
    "chunk exponent 23": e0[:10] + b"\x17" + e0[11:],
    "flags 01": e0[:11] + b"\1" + e0[12:],
    "magic wrong + version 2": b"\x89KNX\r\n\x1a\n\2" + e0[9:],
    # stanzas
    "count 0": remac(e0, lambda h: h.__setitem__(slice(28, 30), b"\0\0")),
    "count 2 (one stanza present)": remac(e0, lambda h: h.__setitem__(slice(28, 30), b"\0\2")),
    "kind 00 stanza": env(stanza_hook=lambda st: [(0, b"xyz")] + st),
    "x25519 stanza length 79": env(stanza_hook=lambda st: [(1, bytes(79))] + st),
    "kind 00 stanza, cut inside its body": env(stanza_hook=lambda st: [(0, bytes(50))] + st)[:28 + 2 + 3 + 10],
    "x25519 stanza length 79, cut inside its body": env(stanza_hook=lambda st: [(1, bytes(79))] + st)[:28 + 2 + 3 + 10],
    "body length 1025, cut right after L": env(stanza_hook=lambda st: [(0x42, bytes(1025))] + st)[:28 + 2 + 3],
    "passphrase bad bounds, cut inside its body": env(stanza_hook=lambda st: pass_bad(262145, 1, 1)([])
                                                      + st)[:28 + 2 + 3 + 40],
    "opaque kind 0x42 length 5, first": env(stanza_hook=lambda st: [(0x42, b"hello")] + st),
    "opaque kind 0xff length 0": env(stanza_hook=lambda st: st + [(0xFF, b"")]),
    "opaque kind 0x42 length 1024": env(stanza_hook=lambda st: st + [(0x42, bytes(1024))]),
    "opaque kind 0x42 length 1025": env(stanza_hook=lambda st: st + [(0x42, bytes(1025))]),
    "1024 stanzas": env(stanza_hook=lambda st: st + [(0x42, b"")] * 1023),
    "1025 stanzas": env(stanza_hook=lambda st: st + [(0x42, b"")] * 1024),
    "two passphrase stanzas (identity given)": env(stanza_hook=lambda st: pass_bad(64, 1, 1)(pass_bad(64, 1, 1)(st))),
    "passphrase m_cost too big (identity given)": env(stanza_hook=pass_bad(262145, 1, 1)),
    "passphrase m < 8p (identity given)": env(stanza_hook=pass_bad(15, 1, 2)),
    "passphrase t=0 (identity given)": env(stanza_hook=pass_bad(64, 0, 1)),
    "passphrase p=9 (identity given)": env(stanza_hook=pass_bad(4096, 1, 9)),
    "passphrase m_cost too big, first (identity given)": env(stanza_hook=lambda st: pass_bad(262145, 1, 1)([]) + st),
    "passphrase bounds bad, then malformed stanza": env(stanza_hook=lambda st: pass_bad(15, 1, 2)(st) + [(3, bytes(79))]),
    "passphrase within bounds m=8p (identity given)": env(stanza_hook=pass_bad(16, 1, 2)),
    "second passphrase stanza out of bounds": env(stanza_hook=lambda st: pass_bad(262145, 1, 1)(pass_bad(64, 1, 1)(st))),
    "decoy stanza for same key first": env(stanza_hook=lambda st: [decoy_stanza] + st),
    "decoy stanza for same key after": env(stanza_hook=lambda st: st + [decoy_stanza]),
    "zero ephemeral share first": env(stanza_hook=lambda st: [(1, bytes(80))] + st),
    "only a stanza for another key": k.seal(bytes(10), recipients=[k.public_key(other)], e=12),
    # metadata
    "M = 27": remac(e0, lambda h: h.__setitem__(slice(m_at, m_at + 4), (27).to_bytes(4, "big"))),
    "M = 65537": remac(e0, lambda h: h.__setitem__(slice(m_at, m_at + 4), (65537).to_bytes(4, "big"))),
    "M = 30 (2-byte plaintext)": env(meta_plain=b"\0\0"),
    "M = 28 (empty plaintext)": env(meta_plain=b""),
    "M = 65536, only a stanza for another key": k.seal(bytes(10), recipients=[k.public_key(other)], e=12,
                                                      meta_plain=bytes(65536 - 28)),
    "M = 8241 (largest valid metadata)": env(meta_plain=k.encode_metadata(name="n" * 4096, content_type="t" * 4096,
                                                                          size=10000, modified=1)),
    "M = 8242 (one byte more)": env(meta_plain=k.encode_metadata(name="n" * 4096, content_type="t" * 4096,
                                                                 size=10000, modified=1) + b"\0"),
    "M = 65536 (long content type)": env(meta_plain=b"\1\0\0" + (65536 - 28 - 13).to_bytes(2, "big") + bytes(65536 - 28 - 13) + (10000).to_bytes(8, "big")),
    "M = 65537 (valid MAC, real ct)": env(meta_plain=k.encode_metadata(size=10000) + bytes(65537 - 28 - 13)),
    "content type 4096, name 4096": env(meta_plain=k.encode_metadata(name="n" * 4096, content_type="t" * 4096, size=10000)),
    "symmetric stanza (unknown key) first": env(stanza_hook=lambda st: [(3, os.urandom(80))] + st),
    "low-order share u=1 first": env(stanza_hook=lambda st: [(1, b"\1" + bytes(31) + os.urandom(48))] + st),
    "metadata flag 0x04": env(meta_plain=b"\4\0\0\0\0"),
    "metadata trailing byte": env(meta_plain=k.encode_metadata(size=10000) + b"\0"),
    "name 4096 bytes": env(meta_plain=k.encode_metadata(name="a" * 4096, size=10000)),
    "name 4097 bytes": env(meta_plain=k.encode_metadata(name="a" * 4097, size=10000)),
    "name invalid UTF-8": env(meta_plain=b"\1\0\2\xff\xfe\0\0" + (10000).to_bytes(8, "big")),
    "name with NUL and '/'": env(meta_plain=b"\1\0\3a/\0\0\0" + (10000).to_bytes(8, "big")),
    "metadata ct tampered, MAC recomputed": remac(e0, lambda h: h.__setitem__(len(h) - 1, h[-1] ^ 1)),
}

# Classes FORMAT.md names for these cases (checked in addition to agreeing with kinko).
EXPECT = {
    "1 byte, first of the magic": "truncated-header",
    "5 bytes of magic": "truncated-header",
    "1 byte, not the magic": "not-kinko",
    "empty file": "not-kinko",
    "cut inside metadata": "truncated-header",
    "kind 00 stanza, cut inside its body": "truncated-header",
    "passphrase m_cost too big (identity given)": "argon2-bounds",
    "passphrase bounds bad, then malformed stanza": "argon2-bounds",
    "second passphrase stanza out of bounds": "malformed-header",
    "metadata ct tampered, MAC recomputed": "header-auth",
    "M = 8241 (largest valid metadata)": "ok",
    "M = 8242 (one byte more)": "malformed-header",
    "M = 65536, only a stanza for another key": "no-identity",
    "size says 5000, payload 4096": "size-mismatch",
    "cut at chunk boundary (no size)": "truncated",
    "full final chunk + 1 byte": "trailing-data",
    "empty last chunk at index 1": "chunk-auth",
    "empty chunk sealed not-last at index 1": "truncated",
    "short final chunk sealed not-last": "truncated",
}
assert set(EXPECT) <= set(CASES), set(EXPECT) - set(CASES)

mismatch = 0
for name, data in CASES.items():
    (W / "case.kinko").write_bytes(data)
    r = subprocess.run([KINKO, "-q", "open", "-i", str(W / "id.txt"), str(W / "case.kinko"), "-o", str(W / "case.out")],
                       capture_output=True, env={x: v for x, v in os.environ.items() if x != "KINKO_PASSPHRASE"}, stdin=subprocess.DEVNULL)
    try:
        k.open_envelope(data, identities=[sk])
        mine = "ok"
    except k.KinkoError as ex:
        mine = ex.cls
    same = EXIT[mine] == r.returncode and EXPECT.get(name, mine) == mine
    mismatch += not same
    msg = r.stderr.decode().strip().splitlines()[-1][:110] if r.stderr.strip() else ""
    print(f"{'same' if same else 'DIFF'}  {name:50s} indep={mine:17s} kinko=exit {r.returncode:<3d} {msg}")
print(f"{len(CASES)} cases, {mismatch} differences")
sys.exit(1 if mismatch else 0)
