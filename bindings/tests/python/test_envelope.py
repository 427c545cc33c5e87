"""Sealing and opening files and buffers, against the real library and the real `kinko` CLI."""

import json
import os
import threading
import unittest

import kinko
from support import (
    VECTOR_IDENTITY_1,
    VECTOR_PASSPHRASE,
    VECTORS,
    TempDirTest,
    data,
    run_kinko,
    sha256_file,
)

CHUNK = 64 * 1024


def vector(name):
    return os.path.join(VECTORS, name)


class Recorder(kinko.ProgressListener):
    """Records every report; returns `answer(done)` (default: go on)."""

    def __init__(self, answer=None):
        self.reports = []
        self.answer = answer or (lambda done: True)

    def on_progress(self, done, total):
        self.reports.append((done, total))
        return self.answer(done)


class InteropTests(TempDirTest):
    """Files sealed here open with the CLI, and the other way round."""

    def test_seal_in_python_open_with_the_cli(self):
        alice, alice_file = self.new_identity()
        bob = kinko.Identity.generate()
        plain = self.write("report.pdf", data(300_000))
        sealed = kinko.seal_file(
            plain,
            self.path("report.pdf.kinko"),
            kinko.SealTo(recipients=[bob.to_public(), alice.to_public()]),
        )
        self.assertEqual(sealed.plaintext_len, 300_000)
        self.assertEqual(sealed.envelope_len, os.path.getsize(self.path("report.pdf.kinko")))
        out = run_kinko(
            "open", "-i", alice_file, "-o", self.path("opened.pdf"), self.path("report.pdf.kinko")
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.read("opened.pdf"), self.read("report.pdf"))

    def test_seal_with_the_cli_open_in_python(self):
        alice, _ = self.new_identity()
        self.write("notes.txt", data(200_001))
        out = run_kinko(
            "seal", "-r", str(alice.to_public()), "--suite", "chacha", "--chunk-size", "4K",
            "-o", self.path("notes.kinko"), self.path("notes.txt"),
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        info = kinko.open_file(
            self.path("notes.kinko"), self.path("notes.out"), kinko.OpenWith(identities=[alice])
        )
        self.assertEqual(self.read("notes.out"), self.read("notes.txt"))
        self.assertEqual(info.name, "notes.txt")
        self.assertEqual(info.size, 200_001)
        self.assertIsNotNone(info.modified)
        env = kinko.inspect_file(self.path("notes.kinko"))
        self.assertEqual(env.suite, kinko.Suite.CHACHA20_POLY1305)
        self.assertEqual(env.chunk_size, 4096)
        self.assertEqual(env.plaintext_len, 200_001)

    def test_passphrase_both_ways(self):
        self.write("plain", data(70_000))
        secret = kinko.Secret("correct horse battery staple")
        kinko.seal_file(self.path("plain"), self.path("p.kinko"), kinko.SealTo(passphrase=secret))
        out = run_kinko(
            "open", "-o", self.path("cli.out"), self.path("p.kinko"),
            env={"KINKO_PASSPHRASE": "correct horse battery staple"},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.read("cli.out"), self.read("plain"))

        out = run_kinko(
            "seal", "-p", "-o", self.path("cli.kinko"), self.path("plain"),
            env={"KINKO_PASSPHRASE": "tr0ub4dor&3"},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        kinko.open_file(
            self.path("cli.kinko"), self.path("py.out"),
            kinko.OpenWith(passphrase=kinko.Secret("tr0ub4dor&3")),
        )
        self.assertEqual(self.read("py.out"), self.read("plain"))
        with self.assertRaises(kinko.KinkoError.NoIdentityMatches):
            kinko.open_file(
                self.path("cli.kinko"), self.path("wrong.out"),
                kinko.OpenWith(passphrase=kinko.Secret("tr0ub4dor&4")),
            )
        self.assertNoOutput("wrong.out")

    def test_vectors_open_and_fail_as_specified(self):
        id1 = kinko.Identity.parse(VECTOR_IDENTITY_1)
        keys = kinko.OpenWith(identities=[id1])
        info = kinko.open_file(vector("x25519_two_recipients_aes.kinko"), self.path("v.out"), keys)
        self.assertEqual(
            (info.name, info.content_type, info.size, info.modified),
            ("report.txt", "text/plain", 10_000, 1_700_000_000),
        )
        opened = kinko.open_bytes(
            self.read(vector("passphrase_empty_chacha.kinko")),
            kinko.OpenWith(passphrase=kinko.Secret(VECTOR_PASSPHRASE)),
        )
        self.assertEqual(opened.data, b"")
        cases = [
            ("bad_header_mac.kinko", kinko.KinkoError.HeaderAuthFailed, {}),
            ("bad_chunk_1.kinko", kinko.KinkoError.ChunkAuthFailed, {"chunk": 1}),
            ("bad_truncated.kinko", kinko.KinkoError.Truncated, {}),
            ("bad_trailing_data.kinko", kinko.KinkoError.ChunkAuthFailed, {"chunk": 2}),
            ("bad_version.kinko", kinko.KinkoError.UnsupportedVersion, {"version": 2}),
        ]
        for name, error, fields in cases:
            with self.subTest(name=name):
                with self.assertRaises(error) as cm:
                    kinko.open_file(vector(name), self.path("bad.out"), keys)
                for field, value in fields.items():
                    self.assertEqual(getattr(cm.exception, field), value)
                self.assertNoOutput("bad.out")
                with self.assertRaises(error):
                    kinko.open_bytes(self.read(vector(name)), keys)

    def test_inspect_agrees_with_the_cli(self):
        for name in ["x25519_two_recipients_aes.kinko", "passphrase_empty_chacha.kinko",
                     "symmetric_one_chunk_exact_aes.kinko", "bad_truncated.kinko"]:
            with self.subTest(name=name):
                out = run_kinko("inspect", "--json", vector(name))
                self.assertEqual(out.returncode, 0, out.stderr)
                cli = json.loads(out.stdout)
                info = kinko.inspect_file(vector(name))
                self.assertEqual(kinko.inspect_bytes(self.read(vector(name))), info)
                self.assertEqual(info.version, cli["version"])
                self.assertEqual(info.chunk_size, cli["chunk_size"])
                self.assertEqual(info.header_len, cli["header_len"])
                self.assertEqual(info.payload_len, cli["payload_len"])
                self.assertEqual(info.plaintext_len, cli["plaintext_len"])
                self.assertEqual(info.chunks, cli["chunks"])
                self.assertEqual(
                    [cli_kind(s) for s in info.stanzas], [s["kind"] for s in cli["stanzas"]]
                )
                for ours, theirs in zip(info.stanzas, cli["stanzas"]):
                    self.assertEqual(ours.key_id, theirs.get("key_id"))
                    if "argon2id" in theirs:
                        self.assertEqual(ours.argon2.m_cost_kib, theirs["argon2id"]["m_cost_kib"])
                        self.assertEqual(ours.argon2.t_cost, theirs["argon2id"]["t_cost"])
                        self.assertEqual(ours.argon2.within_bounds, True)


def cli_kind(stanza):
    """The CLI's JSON name of a stanza kind."""
    kind = stanza.kind
    if kind.is_x25519():
        return "x25519"
    if kind.is_passphrase():
        return "passphrase"
    if kind.is_symmetric():
        return "symmetric-key"
    return "unknown(0x%02x)" % kind.kind


class EnvelopeTests(TempDirTest):
    def sealed(self, plain_len, name="plain", chunk_size=None):
        """Seals plain_len bytes to a new identity; returns (identity, envelope path)."""
        alice = kinko.Identity.generate()
        self.write(name, data(plain_len))
        kinko.seal_file(
            self.path(name), self.path(name + ".kinko"),
            kinko.SealTo(recipients=[alice.to_public()]),
            kinko.SealOptions(chunk_size=chunk_size),
        )
        return alice, self.path(name + ".kinko")

    def test_round_trips_at_the_edges(self):
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK]:
            with self.subTest(n=n):
                alice, env = self.sealed(n, name="f%d" % n)
                info = kinko.open_file(env, self.path("out"), kinko.OpenWith(identities=[alice]))
                self.assertEqual(info.size, n)
                self.assertEqual(info.name, "f%d" % n)
                self.assertEqual(self.read("out"), data(n))

    def test_buffers_round_trip_and_interoperate(self):
        alice, alice_file = self.new_identity()
        to = kinko.SealTo(recipients=[alice.to_public()])
        keys = kinko.OpenWith(identities=[alice])
        for payload in [b"", b"x", data(100_000)]:
            env = kinko.seal_bytes(payload, to, kinko.SealOptions(name="memo.txt",
                                                                  content_type="text/plain"))
            opened = kinko.open_bytes(env, keys)
            self.assertEqual(opened.data, payload)
            self.assertEqual(opened.info.name, "memo.txt")
            self.assertEqual(opened.info.content_type, "text/plain")
            self.assertEqual(opened.info.size, len(payload))
        self.write("memo.kinko", kinko.seal_bytes(b"for the CLI", to))
        out = run_kinko("open", "-i", alice_file, self.path("memo.kinko"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"for the CLI")
        with self.assertRaises(kinko.KinkoError.NotAnEnvelope):
            kinko.open_bytes(b"plain text, not an envelope", keys)
        with self.assertRaises(kinko.KinkoError.TruncatedHeader):
            kinko.open_bytes(self.read("memo.kinko")[:20], keys)

    def test_options_and_argument_errors(self):
        alice = kinko.Identity.generate()
        self.write("plain", data(10_000))
        to = kinko.SealTo(recipients=[alice.to_public()])
        kinko.seal_file(self.path("plain"), self.path("c.kinko"), to,
                        kinko.SealOptions(suite=kinko.Suite.CHACHA20_POLY1305, chunk_size=4096))
        info = kinko.inspect_file(self.path("c.kinko"))
        self.assertEqual((info.suite, info.chunk_size, info.chunks),
                         (kinko.Suite.CHACHA20_POLY1305, 4096, 3))
        self.assertEqual([s.kind for s in info.stanzas], [kinko.StanzaKind.X25519()])
        kinko.seal_file(self.path("plain"), self.path("a.kinko"), to,
                        kinko.SealOptions(suite=kinko.Suite.AES256_GCM))
        self.assertEqual(kinko.inspect_file(self.path("a.kinko")).suite, kinko.Suite.AES256_GCM)

        with self.assertRaises(kinko.KinkoError.NoRecipients):
            kinko.seal_file(self.path("plain"), self.path("x.kinko"), kinko.SealTo())
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            kinko.seal_file(self.path("plain"), self.path("x.kinko"), to,
                            kinko.SealOptions(chunk_size=5000))
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            kinko.seal_file(self.path("plain"), self.path("x.kinko"),
                            kinko.SealTo(passphrase=kinko.Secret("")))
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            kinko.seal_file(self.path("plain"), self.path("plain"), to)
        self.assertNoOutput("x.kinko")
        self.assertEqual(self.read("plain"), data(10_000))
        with self.assertRaises(kinko.KinkoError.Io) as cm:
            kinko.seal_file(self.path("missing"), self.path("x.kinko"), to)
        self.assertIn("missing", cm.exception.detail)
        with self.assertRaises(kinko.KinkoError.Io):
            kinko.seal_file(self.path("plain"), self.path("no/such/dir/x.kinko"), to)
        with self.assertRaises(kinko.KinkoError.NotAnEnvelope):
            kinko.inspect_file(self.path("plain"))

    def test_every_error_has_a_message_for_people(self):
        alice = kinko.Identity.generate()
        envelope = kinko.seal_bytes(b"x", kinko.SealTo(recipients=[alice.to_public()]))
        with self.assertRaises(kinko.KinkoError.NoIdentityMatches) as cm:
            kinko.open_bytes(envelope, kinko.OpenWith(identities=[kinko.Identity.generate()]))
        self.assertEqual(str(cm.exception), "")
        self.assertEqual(cm.exception.message(),
                         "no identity or passphrase matches any stanza of this envelope")
        with self.assertRaises(kinko.KinkoError.ChunkAuthFailed) as cm:
            kinko.open_bytes(envelope[:-1] + bytes([envelope[-1] ^ 1]),
                             kinko.OpenWith(identities=[alice]))
        self.assertEqual(cm.exception.message(), "payload chunk 0 failed authentication")
        token = kinko.CancelToken()
        token.cancel()
        with self.assertRaises(kinko.KinkoError.Cancelled) as cm:
            kinko.seal_file(self.write("p", b"x"), self.path("p.kinko"),
                            kinko.SealTo(recipients=[alice.to_public()]), cancel=token)
        self.assertEqual(cm.exception.message(), "cancelled")

    def test_tampered_files_raise_the_right_exceptions(self):
        alice, env = self.sealed(3 * CHUNK, chunk_size=None)
        bob = kinko.Identity.generate()
        good = self.read(env)
        header_len = kinko.inspect_file(env).header_len
        enc_chunk = CHUNK + 16

        def flip(buf, i):
            b = bytearray(buf)
            b[i] ^= 0x01
            return bytes(b)

        cases = [
            ("header MAC", flip(good, header_len - 1), kinko.KinkoError.HeaderAuthFailed, {}),
            ("chunk 0", flip(good, header_len + 10), kinko.KinkoError.ChunkAuthFailed,
             {"chunk": 0}),
            ("chunk 2", flip(good, header_len + 2 * enc_chunk + 5),
             kinko.KinkoError.ChunkAuthFailed, {"chunk": 2}),
            ("cut at a chunk boundary", good[: header_len + 2 * enc_chunk],
             kinko.KinkoError.Truncated, {}),
            ("cut inside the header", good[: header_len - 5], kinko.KinkoError.TruncatedHeader, {}),
            ("bytes appended", good + b"\x00", kinko.KinkoError.TrailingData, {}),
            ("magic", flip(good, 1), kinko.KinkoError.NotAnEnvelope, {}),
        ]
        keys = kinko.OpenWith(identities=[alice])
        self.write("out", b"the previous contents")
        for what, content, error, fields in cases:
            with self.subTest(what=what):
                self.write("bad.kinko", content)
                with self.assertRaises(error) as cm:
                    kinko.open_file(self.path("bad.kinko"), self.path("out"), keys)
                self.assertIsInstance(cm.exception, kinko.KinkoError)
                for field, value in fields.items():
                    self.assertEqual(getattr(cm.exception, field), value)
                # No partial plaintext: the existing output is untouched, nothing is left over.
                self.assertEqual(self.read("out"), b"the previous contents")
                self.assertNoOutput("none")
                with self.assertRaises(error):
                    kinko.open_bytes(content, keys)
        with self.assertRaises(kinko.KinkoError.NoIdentityMatches):
            kinko.open_file(env, self.path("bob.out"), kinko.OpenWith(identities=[bob]))
        with self.assertRaises(kinko.KinkoError.NoIdentityMatches):
            kinko.open_file(env, self.path("bob.out"), kinko.OpenWith())
        self.assertNoOutput("bob.out")


class ProgressAndCancelTests(TempDirTest):
    SIZE = 8 * 1024 * 1024 + 12345

    def setUp(self):
        super().setUp()
        self.alice = kinko.Identity.generate()
        self.to = kinko.SealTo(recipients=[self.alice.to_public()])
        self.keys = kinko.OpenWith(identities=[self.alice])
        self.write("big", data(self.SIZE))

    def test_progress_reports_every_mebibyte_up_to_the_total(self):
        rec = Recorder()
        kinko.seal_file(self.path("big"), self.path("big.kinko"), self.to, progress=rec)
        done = [d for d, _ in rec.reports]
        self.assertEqual(done[0], 0)
        self.assertEqual(done[-1], self.SIZE)
        self.assertEqual(done, sorted(done))
        self.assertTrue(all(t == self.SIZE for _, t in rec.reports))
        self.assertGreaterEqual(len(done), self.SIZE // (1 << 20))
        self.assertLessEqual(len(done), self.SIZE // (1 << 20) + 3)

        rec = Recorder()
        kinko.open_file(self.path("big.kinko"), self.path("big.out"), self.keys, progress=rec)
        size = os.path.getsize(self.path("big.kinko"))
        self.assertEqual(rec.reports[0], (0, size))
        self.assertEqual(rec.reports[-1], (size, size))
        self.assertEqual(sha256_file(self.path("big.out")), sha256_file(self.path("big")))

    def test_listener_returning_false_cancels_and_leaves_nothing(self):
        rec = Recorder(answer=lambda done: done < 3 * (1 << 20))
        with self.assertRaises(kinko.KinkoError.Cancelled):
            kinko.seal_file(self.path("big"), self.path("big.kinko"), self.to, progress=rec)
        self.assertNoOutput("big.kinko")
        self.assertLess(rec.reports[-1][0], self.SIZE)

        kinko.seal_file(self.path("big"), self.path("big.kinko"), self.to)
        rec = Recorder(answer=lambda done: done < 3 * (1 << 20))
        with self.assertRaises(kinko.KinkoError.Cancelled):
            kinko.open_file(self.path("big.kinko"), self.path("big.out"), self.keys, progress=rec)
        self.assertNoOutput("big.out")

    def test_token_cancelled_from_another_thread(self):
        for op in ["seal", "open"]:
            with self.subTest(op=op):
                token = kinko.CancelToken()

                def answer(done):
                    if done >= 2 * (1 << 20) and not token.is_cancelled():
                        t = threading.Thread(target=token.cancel)
                        t.start()
                        t.join()
                    return True

                rec = Recorder(answer)
                with self.assertRaises(kinko.KinkoError.Cancelled):
                    if op == "seal":
                        kinko.seal_file(self.path("big"), self.path("out"), self.to,
                                        progress=rec, cancel=token)
                    else:
                        kinko.seal_file(self.path("big"), self.path("big.kinko"), self.to)
                        kinko.open_file(self.path("big.kinko"), self.path("out"), self.keys,
                                        progress=rec, cancel=token)
                self.assertTrue(token.is_cancelled())
                self.assertNoOutput("out")
                # Stopped within a chunk batch of the cancellation, far before the end.
                self.assertLess(rec.reports[-1][0], 4 * (1 << 20))

    def test_cancelled_token_stops_before_anything_is_written(self):
        token = kinko.CancelToken()
        token.cancel()
        self.write("out", b"keep me")
        with self.assertRaises(kinko.KinkoError.Cancelled):
            kinko.seal_file(self.path("big"), self.path("out"), self.to, cancel=token)
        self.assertEqual(self.read("out"), b"keep me")
        self.assertNoOutput("none")

    def test_an_exception_in_the_listener_stops_the_operation(self):
        def answer(done):
            if done > 0:
                raise ValueError("the app's listener broke")
            return True

        with self.assertRaises(kinko.KinkoError.CallbackFailed) as cm:
            kinko.seal_file(self.path("big"), self.path("big.kinko"), self.to,
                            progress=Recorder(answer))
        self.assertIn("the app's listener broke", cm.exception.detail)
        self.assertNoOutput("big.kinko")


if __name__ == "__main__":
    unittest.main()
