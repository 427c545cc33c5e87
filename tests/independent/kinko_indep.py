"""Independent Kinko envelope v1 opener/sealer, written from docs/FORMAT.md only.

Small on purpose: meant as a cross-check against kinko-core, not as a product. The opener
follows FORMAT.md's "Errors" order and its "Reading the payload" / "Random access"
procedures; section names in comments point there.
Needs: cryptography, blake3, argon2-cffi (requirements.txt).
"""
import hmac
import os
import struct

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

MAGIC = b"\x89KNK\r\n\x1a\n"
CTX = "kinko.dev/v1 "
AES, CHACHA = 1, 2
K_X25519, K_PASS, K_SYM = 1, 2, 3
BODY_LEN = {K_X25519: 80, K_PASS: 76, K_SYM: 80}


class KinkoError(Exception):
    """cls is one of FORMAT.md's "Errors" classes: not-kinko, unsupported-version,
    unsupported-suite, malformed-header, truncated-header, argon2-bounds, no-identity (no matching
    stanza), header-auth, chunk-auth (detail: the index), truncated, trailing-data, size-mismatch."""

    def __init__(self, cls, detail=""):
        super().__init__(f"{cls}: {detail}" if detail else cls)
        self.cls, self.detail = cls, detail


def derive(name, material):
    return blake3.blake3(material, derive_key_context=CTX + name).digest()


def keyed(key, data):
    return blake3.blake3(data, key=key).digest()


def aead(suite, key):
    return AESGCM(key) if suite == AES else ChaCha20Poly1305(key)


def try_open(cipher, nonce, ct, aad=b""):
    try:
        return cipher.decrypt(nonce, ct, aad)
    except InvalidTag:
        return None


# --- age key encodings (Bech32, BIP 173 checksum, no length limit) -------------------------

B32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data, frm, to, pad):
    acc = bits = 0
    out = []
    for v in data:
        acc = acc << frm | v
        bits += frm
        while bits >= to:
            bits -= to
            out.append(acc >> bits & (1 << to) - 1)
    if pad and bits:
        out.append(acc << (to - bits) & (1 << to) - 1)
    elif not pad and (bits >= frm or acc & (1 << bits) - 1):
        raise ValueError("bad padding")
    return out


def bech32_encode(hrp, data):
    d = _convert(data, 8, 5, True)
    pm = _polymod(_hrp_expand(hrp) + d + [0] * 6) ^ 1
    return hrp + "1" + "".join(B32[c] for c in d + [pm >> 5 * (5 - i) & 31 for i in range(6)])


def bech32_decode(s):
    s = s.lower()
    hrp, _, rest = s.rpartition("1")
    d = [B32.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + d) != 1:
        raise ValueError("bad bech32 checksum")
    return hrp, bytes(_convert(d[:-6], 5, 8, False))


def identity_from_str(s):
    hrp, sk = bech32_decode(s.strip())
    assert hrp == "age-secret-key-" and len(sk) == 32
    return sk


def identity_to_str(sk):
    return bech32_encode("age-secret-key-", sk).upper()


def recipient_from_str(s):
    hrp, pk = bech32_decode(s.strip())
    assert hrp == "age" and len(pk) == 32
    return pk


def public_key(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def x25519(sk, pk):
    # cryptography raises on an all-zero result; FORMAT.md wants "all zero" handled explicitly
    try:
        return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))
    except ValueError:
        return bytes(32)


def sym_key_id(k):
    return derive("symmetric key id", k)[:16]


# --- opener ------------------------------------------------------------------------------


class Reader:
    """Bytes of `data` in order; running out is `short` (FORMAT.md: truncated header)."""

    def __init__(self, data, short="truncated-header"):
        self.data, self.pos, self.short = data, 0, short

    def take(self, n):
        if self.pos + n > len(self.data):
            raise KinkoError(self.short, f"input ends at byte {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u(self, n):
        return int.from_bytes(self.take(n), "big")


def argon2_in_bounds(m, t, p):
    return 1 <= p <= 8 and 1 <= t <= 16 and 8 * p <= m <= 262144


def parse_header(data):
    """Returns a dict with the header fields and 'header_len'; no key needed. Every check is
    made as soon as its bytes are read, in byte order (FORMAT.md "Errors", step 1)."""
    if not data:
        raise KinkoError("not-kinko", "empty input")
    r = Reader(data)
    for b in MAGIC:  # byte by byte: a non-empty prefix of the magic is a truncated header
        if r.u(1) != b:
            raise KinkoError("not-kinko")
    version = r.u(1)
    if version != 1:
        raise KinkoError("unsupported-version", str(version))
    suite = r.u(1)
    if suite not in (AES, CHACHA):
        raise KinkoError("unsupported-suite", str(suite))
    e = r.u(1)
    if not 12 <= e <= 22:
        raise KinkoError("malformed-header", f"chunk exponent {e}")
    flags = r.u(1)
    if flags != 0:
        raise KinkoError("malformed-header", f"flags {flags}")
    h = dict(suite=suite, e=e, payload_nonce=r.take(16), stanzas=[])
    count = r.u(2)
    if not 1 <= count <= 1024:
        raise KinkoError("malformed-header", f"stanza count {count}")
    passphrases = 0
    for _ in range(count):
        kind, length = r.u(1), r.u(2)
        if length > 1024:
            raise KinkoError("malformed-header", f"stanza body length {length}")
        body = r.take(length)  # the other stanza checks come after the body is read
        if kind == 0:
            raise KinkoError("malformed-header", "stanza kind 0")
        if BODY_LEN.get(kind, length) != length:
            raise KinkoError("malformed-header", f"stanza kind {kind} length {length}")
        if kind == K_PASS:
            passphrases += 1
            if passphrases > 1:
                raise KinkoError("malformed-header", "more than one passphrase stanza")
            m, t, p = struct.unpack(">III", body[16:28])
            if not argon2_in_bounds(m, t, p):  # while parsing, whatever keys the opener holds
                raise KinkoError("argon2-bounds", f"m={m} t={t} p={p}")
        h["stanzas"].append((kind, body))
    m = r.u(4)
    if not 28 <= m <= 65536:
        raise KinkoError("malformed-header", f"metadata length {m}")
    h["meta_nonce"], h["meta_ct"] = r.take(12), r.take(m - 12)
    h["mac_input"] = data[:r.pos]
    h["mac"] = r.take(32)
    h["header_len"] = r.pos
    return h


def unwrap(key, body_wrapped, aad=b""):
    return try_open(ChaCha20Poly1305(key), bytes(12), body_wrapped, aad)


def find_dek(h, identities, sym_keys, passphrase):
    """First stanza whose `wrapped` decrypts: X25519 and symmetric in header order, then passphrase."""
    for kind, body in h["stanzas"]:
        if kind == K_X25519:
            share, wrapped = body[:32], body[32:]
            for sk in identities:
                shared = x25519(sk, share)
                if shared == bytes(32):
                    continue
                dek = unwrap(derive("x25519 wrap key", share + public_key(sk) + shared), wrapped)
                if dek is not None:
                    return dek
        elif kind == K_SYM:
            kid, salt, wrapped = body[:16], body[16:32], body[32:]
            for k in sym_keys:
                if hmac.compare_digest(sym_key_id(k), kid):
                    dek = unwrap(derive("symmetric wrap key", k + salt), wrapped, kid)
                    if dek is not None:
                        return dek
    for kind, body in h["stanzas"]:
        if kind == K_PASS and passphrase is not None:
            salt, (m, t, p), wrapped = body[:16], struct.unpack(">III", body[16:28]), body[28:]
            key = hash_secret_raw(passphrase.encode(), salt, t, m, p, 32, Type.ID, 0x13)
            dek = unwrap(key, wrapped)
            if dek is not None:
                return dek
    raise KinkoError("no-identity")


def parse_metadata(pt):
    r = Reader(pt, short="malformed-header")
    try:
        flags = r.u(1)
        if flags & ~3:
            raise KinkoError("malformed-header", f"metadata flags {flags}")
        meta = {}
        for field in ("name", "content_type"):
            n = r.u(2)
            if n > 4096:
                raise KinkoError("malformed-header", f"{field} too long")
            meta[field] = r.take(n).decode("utf-8")
        if flags & 1:
            meta["size"] = r.u(8)
        if flags & 2:
            meta["modified"] = int.from_bytes(r.take(8), "big", signed=True)
    except (KinkoError, UnicodeDecodeError) as ex:
        if isinstance(ex, KinkoError) and ex.cls == "malformed-header":
            raise
        raise KinkoError("malformed-header", "metadata plaintext") from ex
    if r.pos != len(pt):
        raise KinkoError("malformed-header", "bytes after metadata")
    return meta


def open_envelope(data, identities=(), sym_keys=(), passphrase=None, random_access=False):
    """Returns (metadata dict, plaintext bytes) or raises KinkoError. The whole payload is read,
    as a stream (FORMAT.md "Reading the payload", what `kinko open` does), or with
    random_access=True as a random-access opener that knows the payload's length ("Random
    access")."""
    h = parse_header(data)
    dek = find_dek(h, identities, sym_keys, passphrase)
    mac = keyed(derive("header mac key", dek), h["mac_input"])
    if not hmac.compare_digest(mac, h["mac"]):
        raise KinkoError("header-auth")
    suite, pn = h["suite"], h["payload_nonce"]
    mpt = try_open(aead(suite, derive("metadata key", dek + pn)), h["meta_nonce"], h["meta_ct"])
    if mpt is None:
        raise KinkoError("header-auth", "metadata tag")  # FORMAT.md "Metadata"
    meta = parse_metadata(mpt)
    opener = open_payload_known if random_access else open_payload
    return meta, opener(data[h["header_len"]:], suite, derive("payload key", dek + pn), h["e"], meta)


def _open_chunk(cipher, i, last, blk):
    """One chunk of FORMAT.md's "Reading the payload" procedure: the plaintext, or an error."""
    if last and len(blk) < 16:
        raise KinkoError("truncated", f"chunk {i} ends inside its tag")
    nonce = lambda f: i.to_bytes(11, "big") + bytes([f])
    pt = try_open(cipher, nonce(last), blk)
    if pt is None:
        # the other flag only names the failure
        if try_open(cipher, nonce(not last), blk) is not None:
            raise KinkoError("truncated" if last else "trailing-data", f"chunk {i}")
        raise KinkoError("chunk-auth", str(i))
    if last and i > 0 and not pt:
        raise KinkoError("chunk-auth", str(i))
    return pt


def open_payload(payload, suite, key, e, meta):
    """FORMAT.md "Reading the payload" (streaming)."""
    c, cipher = 1 << e, aead(suite, key)
    out, pos, i = [], 0, 0
    while True:
        blk = payload[pos:pos + c + 16]
        pos += len(blk)
        last = len(blk) < c + 16 or pos == len(payload)
        out.append(_open_chunk(cipher, i, last, blk))
        if last:
            break
        i += 1
    plain = b"".join(out)
    if "size" in meta and meta["size"] != len(plain):
        raise KinkoError("size-mismatch", f"{len(plain)} != {meta['size']}")
    return plain


def open_payload_known(payload, suite, key, e, meta):
    """FORMAT.md "Random access", reading every chunk: the length check first, then each chunk
    with last = (i == n - 1)."""
    c, cipher, plen = 1 << e, aead(suite, key), len(payload)
    n = max(1, -(-plen // (c + 16)))
    if "size" in meta:
        expected = meta["size"] + 16 * max(1, -(-meta["size"] // c))
        if expected >= 1 << 64 or plen < expected:
            raise KinkoError("truncated", f"payload {plen} bytes, size needs {expected}")
        if plen > expected:
            raise KinkoError("trailing-data", f"payload {plen} bytes, size needs {expected}")
    else:
        r = plen - (n - 1) * (c + 16)
        if r < 16 or (r == 16 and n > 1):
            raise KinkoError("truncated", f"no payload is {plen} bytes long")
    return b"".join(_open_chunk(cipher, i, i == n - 1, payload[i * (c + 16):(i + 1) * (c + 16)])
                    for i in range(n))


# --- sealer ------------------------------------------------------------------------------


def encode_metadata(name="", content_type="", size=None, modified=None):
    flags = (size is not None) | (modified is not None) << 1
    b = bytes([flags])
    for s in (name, content_type):
        s = s.encode()
        b += len(s).to_bytes(2, "big") + s
    if size is not None:
        b += size.to_bytes(8, "big")
    if modified is not None:
        b += modified.to_bytes(8, "big", signed=True)
    return b


def seal(plaintext, suite=AES, e=16, recipients=(), sym_keys=(), passphrase=None,
         argon=(65536, 3, 1), meta=None, rand=os.urandom, stanza_hook=None, meta_plain=None,
         chunk_hook=None):
    """recipients: 32-byte X25519 public keys. Stanza order: recipients, symmetric keys,
    passphrase. Randomness order as in core/tests/vectors/README.md.
    The *_hook / meta_plain arguments exist only to build damaged envelopes for tests."""
    dek, pn = rand(32), rand(16)
    wrap = lambda key, aad=b"": ChaCha20Poly1305(key).encrypt(bytes(12), dek, aad)
    stanzas = []
    for pk in recipients:
        esk = rand(32)
        share, shared = public_key(esk), x25519(esk, pk)
        if shared == bytes(32):
            raise ValueError("low-order recipient")
        stanzas.append((K_X25519, share + wrap(derive("x25519 wrap key", share + pk + shared))))
    for k in sym_keys:
        salt, kid = rand(16), sym_key_id(k)
        stanzas.append((K_SYM, kid + salt + wrap(derive("symmetric wrap key", k + salt), kid)))
    if passphrase is not None:
        salt, (m, t, p) = rand(16), argon
        key = hash_secret_raw(passphrase.encode(), salt, t, m, p, 32, Type.ID, 0x13)
        stanzas.append((K_PASS, salt + struct.pack(">III", m, t, p) + wrap(key)))
    if stanza_hook:
        stanzas = stanza_hook(stanzas)
    hdr = MAGIC + bytes([1, suite, e, 0]) + pn + len(stanzas).to_bytes(2, "big")
    for kind, body in stanzas:
        hdr += bytes([kind]) + len(body).to_bytes(2, "big") + body
    mn = rand(12)
    mct = aead(suite, derive("metadata key", dek + pn)).encrypt(mn, meta_plain if meta_plain is not None
                                                              else encode_metadata(**(meta or {})), b"")
    hdr += (12 + len(mct)).to_bytes(4, "big") + mn + mct
    hdr += keyed(derive("header mac key", dek), hdr)
    c, cipher = 1 << e, aead(suite, derive("payload key", dek + pn))
    n = max(1, -(-len(plaintext) // c))
    chunks = [cipher.encrypt(i.to_bytes(11, "big") + bytes([i == n - 1]), plaintext[i * c:(i + 1) * c], b"")
              for i in range(n)]
    if chunk_hook:
        chunks = chunk_hook(cipher, chunks)
    return hdr + b"".join(chunks)
