"""Identities, recipients and secrets: generate, parse, format, interoperate with the CLI."""

import os
import stat
import unittest

import kinko
from support import VECTOR_IDENTITY_1, TempDirTest, run_kinko


class KeyTests(TempDirTest):
    def test_generate_format_and_parse_round_trip(self):
        alice = kinko.Identity.generate()
        encoded = alice.expose_secret()
        self.assertTrue(encoded.startswith("AGE-SECRET-KEY-1"))
        self.assertEqual(len(encoded), 74)
        again = kinko.Identity.parse(encoded)
        self.assertEqual(again.to_public(), alice.to_public())
        # age accepts identities in lower case too.
        self.assertEqual(kinko.Identity.parse(encoded.lower()).to_public(), alice.to_public())

    def test_public_key_of_a_known_identity(self):
        identity = kinko.Identity.parse(VECTOR_IDENTITY_1)
        public = identity.to_public()
        text = str(public)
        self.assertTrue(text.startswith("age1"))
        self.assertEqual(len(text), 62)
        self.assertEqual(kinko.Recipient.parse(text), public)
        self.assertEqual(hash(kinko.Recipient.parse(text)), hash(public))
        self.assertNotEqual(kinko.Identity.generate().to_public(), public)

    def test_repr_never_shows_secrets(self):
        identity = kinko.Identity.parse(VECTOR_IDENTITY_1)
        shown = repr(identity)
        self.assertIn(str(identity.to_public()), shown)
        self.assertNotIn("AGE-SECRET-KEY", shown)
        self.assertNotIn("QYQSZQGP", shown.upper())
        secret = kinko.Secret("correct horse battery staple")
        self.assertEqual(repr(secret), "Secret(..)")
        self.assertFalse(secret.is_empty())
        self.assertTrue(kinko.Secret("").is_empty())

    def test_invalid_keys_raise_invalid_key_without_the_key(self):
        bad_checksum = VECTOR_IDENTITY_1[:-1] + ("A" if VECTOR_IDENTITY_1[-1] != "A" else "B")
        cases = [
            (kinko.Identity.parse, bad_checksum, "checksum"),
            (kinko.Identity.parse, "", "empty"),
            (kinko.Identity.parse, str(kinko.Identity.generate().to_public()), "recipient"),
            (kinko.Recipient.parse, VECTOR_IDENTITY_1, "secret key"),
            (kinko.Recipient.parse, "age1notakey", ""),
            (kinko.Recipient.parse, str(kinko.Identity.generate().to_public()).upper(), "lower case"),
        ]
        for parse, text, words in cases:
            with self.subTest(text=text[:20]):
                with self.assertRaises(kinko.KinkoError.InvalidKey) as cm:
                    parse(text)
                self.assertIsInstance(cm.exception, kinko.KinkoError)
                self.assertIn(words, cm.exception.reason)
                if len(text) > 10:
                    self.assertNotIn(text[10:], cm.exception.reason)

    def test_identity_file_written_here_is_read_by_the_cli_and_vice_versa(self):
        identity, path = self.new_identity()
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600)
        with open(path) as f:
            text = f.read()
        self.assertIn("# public key: %s" % identity.to_public(), text)
        [again] = kinko.read_identity_file(path)
        self.assertEqual(again.to_public(), identity.to_public())
        # An existing key file is never replaced.
        with self.assertRaises(kinko.KinkoError.Io) as cm:
            kinko.Identity.generate().write_file(path, "later")
        self.assertIn("exists", cm.exception.detail)
        [still] = kinko.read_identity_file(path)
        self.assertEqual(still.to_public(), identity.to_public())
        self.assertEqual([n for n in os.listdir(self.dir) if n.startswith(".kinko-")], [])

        out = run_kinko("keygen", "-o", self.path("cli.key"))
        self.assertEqual(out.returncode, 0, out.stderr)
        [cli_identity] = kinko.read_identity_file(self.path("cli.key"))
        self.assertIn(str(cli_identity.to_public()), out.stderr.decode())

    def test_key_files_with_comments_and_bad_lines(self):
        a, b = kinko.Identity.generate(), kinko.Identity.generate()
        text = "# two keys\n\n%s\n  %s  \n" % (a.expose_secret(), b.expose_secret())
        ids = kinko.parse_identities(text)
        self.assertEqual([i.to_public() for i in ids], [a.to_public(), b.to_public()])
        recipients = kinko.parse_recipients("# team\n%s\n%s\n" % (a.to_public(), b.to_public()))
        self.assertEqual(recipients, [a.to_public(), b.to_public()])
        with self.assertRaises(kinko.KinkoError.InvalidKey) as cm:
            kinko.parse_identities("%s\nnot a key\n" % a.expose_secret())
        self.assertIn("line 2", cm.exception.reason)
        with self.assertRaises(kinko.KinkoError.InvalidKey):
            kinko.parse_recipients("# nothing here\n")
        with self.assertRaises(kinko.KinkoError.Io):
            kinko.read_identity_file(self.path("missing.key"))


if __name__ == "__main__":
    unittest.main()
