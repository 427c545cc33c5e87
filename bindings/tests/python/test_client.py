"""The sidecar client against a real `kinko serve` on 127.0.0.1: upload and share from
Python, download by link from Python, revoke, refused after revoke; passwords, limits,
expiry, recipient-bound shares, errors and cancellation."""

import os
import shutil
import tempfile
import unittest

import kinko
from support import Server, TempDirTest, data, run_kinko

MIB = 1 << 20


class Recorder(kinko.ProgressListener):
    def __init__(self, answer=None):
        self.reports = []
        self.answer = answer or (lambda done: True)

    def on_progress(self, done, total):
        self.reports.append((done, total))
        return self.answer(done)


class ClientTests(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.server_dir = tempfile.mkdtemp(prefix="kinko-serve-", dir=os.environ.get("KINKO_TEST_TMP"))
        cls.server = Server(cls.server_dir)
        cls.token = cls.server.new_member("alice")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        log = cls.server.log()
        shutil.rmtree(cls.server_dir, ignore_errors=True)
        # No credential may ever reach the server's log.
        assert cls.token[len("kinko_") + 32:] not in log

    def setUp(self):
        super().setUp()
        self.client = kinko.KinkoClient(self.server.url, kinko.Secret(self.token))

    def upload(self, filename, content, **options):
        path = self.write(filename, content)
        return self.client.upload(path, kinko.UploadOptions(**options))

    def test_upload_share_download_revoke_refused(self):
        me = self.client.me()
        self.assertEqual((me.name, me.role), ("alice", kinko.Role.MEMBER))
        self.client.health()

        content = data(3 * MIB + 17)
        rec = Recorder()
        path = self.write("plan.pdf", content)
        stored = self.client.upload(path, kinko.UploadOptions(content_type="application/pdf"),
                                    progress=rec)
        self.assertEqual((stored.name, stored.size, stored.content_type),
                         ("plan.pdf", len(content), "application/pdf"))
        self.assertEqual(rec.reports[0], (0, len(content)))
        self.assertEqual(rec.reports[-1], (len(content), len(content)))
        self.assertIn(stored.id, [f.id for f in self.client.files()])

        created = self.client.share(stored.id, kinko.ShareOptions(expires_in_seconds=3600,
                                                                  max_downloads=5))
        self.assertEqual(created.file_id, stored.id)
        text = created.link.expose_secret()
        self.assertTrue(text.startswith(self.server.url + "/s/" + created.id + "#"))
        secret = text.split("#")[1]
        self.assertNotIn(secret, repr(created.link))
        self.assertNotIn(secret, repr(created))

        # The partner: only the link text, a fresh client, no token.
        link = kinko.Link.parse(text)
        self.assertEqual((link.base_url(), link.share_id()), (self.server.url, created.id))
        partner = kinko.KinkoClient.for_link(link)
        info = partner.link_info(link)
        self.assertEqual((info.name, info.size, info.password_required, info.recipient_bound,
                          info.downloads_left),
                         ("plan.pdf", len(content), False, False, 5))
        rec = Recorder()
        got = partner.download_link(link, self.path("downloaded.pdf"), progress=rec)
        self.assertEqual(self.read("downloaded.pdf"), content)
        self.assertEqual((got.bytes, got.recipient_bound, got.file_name),
                         (len(content), False, "plan.pdf"))
        self.assertEqual(rec.reports[-1], (len(content), len(content)))

        [listed] = [s for s in self.client.shares() if s.id == created.id]
        self.assertEqual((listed.downloads, listed.max_downloads, listed.state),
                         (1, 5, kinko.ShareState.ACTIVE))
        self.assertEqual([s.id for s in self.client.file_shares(stored.id)], [created.id])

        self.client.revoke_share(created.id)
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            partner.download_link(link, self.path("again.pdf"))
        self.assertNoOutput("again.pdf")
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            partner.link_info(link)
        [listed] = [s for s in self.client.shares() if s.id == created.id]
        self.assertEqual(listed.state, kinko.ShareState.REVOKED)
        self.assertIsNotNone(listed.revoked)

    def test_password_limit_and_expiry(self):
        stored = self.upload("notes.txt", b"the notes")
        created = self.client.share(stored.id, kinko.ShareOptions(
            expires_in_seconds=600, max_downloads=1, password=kinko.Secret("open sesame")))
        link = kinko.Link.parse(created.link.expose_secret())
        partner = kinko.KinkoClient.for_link(link)
        self.assertTrue(partner.link_info(link).password_required)
        with self.assertRaises(kinko.KinkoError.PasswordRequired):
            partner.download_link(link, self.path("out"))
        with self.assertRaises(kinko.KinkoError.WrongPassword):
            partner.download_link(link, self.path("out"), password=kinko.Secret("open sesame!"))
        self.assertNoOutput("out")
        partner.download_link(link, self.path("out"), password=kinko.Secret("open sesame"))
        self.assertEqual(self.read("out"), b"the notes")
        # The limit of one download is used up.
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            partner.download_link(link, self.path("out2"), password=kinko.Secret("open sesame"))

        created = self.client.share(stored.id, kinko.ShareOptions(expires_in_seconds=600))
        link = kinko.Link.parse(created.link.expose_secret())
        partner.download_link(link, self.path("before-expiry"))
        self.server.advance(601)
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            partner.download_link(link, self.path("after-expiry"))
        self.assertNoOutput("after-expiry")
        [listed] = [s for s in self.client.shares() if s.id == created.id]
        self.assertEqual(listed.state, kinko.ShareState.EXPIRED)

    def test_recipient_bound_share(self):
        alice, alice_file = self.new_identity("alice.key")
        bob = kinko.Identity.generate()
        content = data(200_000)
        stored = self.upload("contract.pdf", content)
        created = self.client.share(stored.id, kinko.ShareOptions(
            expires_in_seconds=600, recipients=[alice.to_public()]))
        link = kinko.Link.parse(created.link.expose_secret())
        partner = kinko.KinkoClient.for_link(link)
        self.assertTrue(partner.link_info(link).recipient_bound)

        # Downloaded as is: an envelope for alice, which the CLI opens.
        got = partner.download_link(link, self.path("contract.pdf.kinko"))
        self.assertTrue(got.recipient_bound)
        self.assertNotEqual(self.read("contract.pdf.kinko")[:100], content[:100])
        out = run_kinko("open", "-i", alice_file, "-o", self.path("cli.pdf"),
                        self.path("contract.pdf.kinko"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.read("cli.pdf"), content)

        # Downloaded and opened in one step.
        info = partner.open_recipient_bound(link, self.path("contract.pdf"),
                                            kinko.OpenWith(identities=[alice]))
        self.assertEqual(self.read("contract.pdf"), content)
        self.assertEqual((info.name, info.size), ("contract.pdf", len(content)))

        # Forwarded to bob, it opens for nobody else, and bob's attempts cost no download.
        [before] = [s.downloads for s in self.client.shares() if s.id == created.id]
        for _ in range(2):
            with self.assertRaises(kinko.KinkoError.NotRecipient):
                partner.open_recipient_bound(link, self.path("bob.pdf"),
                                             kinko.OpenWith(identities=[bob]))
        self.assertNoOutput("bob.pdf")
        [after] = [s.downloads for s in self.client.shares() if s.id == created.id]
        self.assertEqual(after, before)

        plain = self.client.share(stored.id, kinko.ShareOptions(expires_in_seconds=600))
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            partner.open_recipient_bound(kinko.Link.parse(plain.link.expose_secret()),
                                         self.path("x"), kinko.OpenWith(identities=[alice]))
        self.assertNoOutput("x")

    def test_owner_download_revoke_all_and_delete(self):
        content = data(100_000)
        stored = self.upload("report.txt", content, name="Q3 report.txt",
                             retention_seconds=3600)
        self.assertEqual(stored.name, "Q3 report.txt")
        got = self.client.download_file(stored.id, self.path("mine.txt"))
        self.assertEqual((got.bytes, got.file_name), (len(content), "Q3 report.txt"))
        self.assertEqual(self.read("mine.txt"), content)

        links = [kinko.Link.parse(self.client.share(
            stored.id, kinko.ShareOptions(expires_in_seconds=600)).link.expose_secret())
            for _ in range(2)]
        self.assertEqual(self.client.revoke_file_shares(stored.id), 2)
        for link in links:
            with self.assertRaises(kinko.KinkoError.LinkInvalid):
                kinko.KinkoClient.for_link(link).link_info(link)

        link = kinko.Link.parse(self.client.share(
            stored.id, kinko.ShareOptions(expires_in_seconds=600)).link.expose_secret())
        self.client.delete_file(stored.id)
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            kinko.KinkoClient.for_link(link).download_link(link, self.path("gone"))
        with self.assertRaises(kinko.KinkoError.NotFound):
            self.client.download_file(stored.id, self.path("gone"))
        self.assertNoOutput("gone")

    def test_errors_are_typed(self):
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            kinko.KinkoClient(self.server.url, kinko.Secret("not a token"))
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            kinko.KinkoClient("ftp://example.com", None)
        wrong = "kinko_" + "0" * 96
        with self.assertRaises(kinko.KinkoError.Unauthenticated):
            kinko.KinkoClient(self.server.url, kinko.Secret(wrong)).files()
        with self.assertRaises(kinko.KinkoError.Unauthenticated):
            kinko.KinkoClient(self.server.url).files()
        with self.assertRaises(kinko.KinkoError.NotFound):
            self.client.revoke_share("0" * 32)
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            self.client.revoke_share("not an id")
        stored = self.upload("a.txt", b"a")
        with self.assertRaises(kinko.KinkoError.InvalidRequest):
            self.client.share(stored.id, kinko.ShareOptions(expires_in_seconds=10 ** 9))

        good = self.client.share(stored.id, kinko.ShareOptions(expires_in_seconds=60))
        text = good.link.expose_secret()
        for bad, words in [
            (text.split("#")[0], "secret"),
            (text[:-1], "64 hex digits"),
            (text.replace("/s/", "/x/"), "/s/"),
            ("not a link", ""),
        ]:
            with self.subTest(bad=bad[-20:]):
                with self.assertRaises(kinko.KinkoError.InvalidLink) as cm:
                    kinko.Link.parse(bad)
                self.assertIn(words, cm.exception.reason)
                self.assertNotIn(text.split("#")[1][:16], cm.exception.reason)
        # A wrong secret for a real share id: refused like any bad link.
        forged = kinko.Link.parse(text.split("#")[0] + "#" + "ab" * 32)
        with self.assertRaises(kinko.KinkoError.LinkInvalid):
            kinko.KinkoClient.for_link(forged).download_link(forged, self.path("forged"))

        # The token and link secrets never go over plain HTTP to another machine unless the
        # client allows it (.invalid never resolves: a call sent out fails on the name).
        remote = "http://kinko-test.invalid:8080"
        with self.assertRaises(kinko.KinkoError.PlainHttpRefused) as cm:
            kinko.KinkoClient(remote, kinko.Secret(wrong)).files()
        self.assertEqual(cm.exception.host, "kinko-test.invalid:8080")
        self.assertEqual(cm.exception.credential, "the API token")
        remote_link = kinko.Link.parse(remote + "/s/" + "0" * 32 + "#" + "ab" * 32)
        with self.assertRaises(kinko.KinkoError.PlainHttpRefused) as cm:
            kinko.KinkoClient.for_link(remote_link).link_info(remote_link)
        self.assertNotIn("abab", str(cm.exception))
        # Allowed, the call fails on the host name, and says so: NetworkKind.DNS, not OTHER.
        for call in [
            lambda: kinko.KinkoClient.for_link(remote_link, allow_plain_http=True).link_info(remote_link),
            lambda: kinko.KinkoClient(remote, kinko.Secret(wrong), allow_plain_http=True).files(),
            lambda: kinko.KinkoClient("https://kinko-test.invalid:1").health(),
        ]:
            with self.assertRaises(kinko.KinkoError.Network) as cm:
                call()
            self.assertEqual(cm.exception.kind, kinko.NetworkKind.DNS)
            self.assertEqual(cm.exception.detail, "kinko-test.invalid")
            self.assertIn("cannot find the host kinko-test.invalid", cm.exception.message())

        # Nothing listens on a port just released.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(kinko.KinkoError.Network) as cm:
            kinko.KinkoClient("http://127.0.0.1:%d" % port).health()
        self.assertEqual(cm.exception.kind, kinko.NetworkKind.CONNECTION_REFUSED)

    def test_a_directory_as_output_is_refused_before_a_download_counts(self):
        stored = self.upload("plan.txt", b"the plan")
        bob = kinko.Identity.generate()
        plain = self.client.share(stored.id, kinko.ShareOptions(
            expires_in_seconds=600, max_downloads=1))
        bound = self.client.share(stored.id, kinko.ShareOptions(
            expires_in_seconds=600, max_downloads=1, recipients=[bob.to_public()]))
        os.mkdir(self.path("saved"))
        for share in (plain, bound):
            link = kinko.Link.parse(share.link.expose_secret())
            partner = kinko.KinkoClient.for_link(link)
            for output in (self.path("saved"), self.path("saved") + os.sep):
                with self.subTest(bound=share is bound, output=output[-7:]):
                    with self.assertRaises(kinko.KinkoError.InvalidArgument) as cm:
                        if share is bound:
                            partner.open_recipient_bound(
                                link, output, kinko.OpenWith(identities=[bob]))
                        else:
                            partner.download_link(link, output)
                    self.assertIn("directory", cm.exception.reason)
                    self.assertEqual(partner.link_info(link).downloads_left, 1)
            self.assertEqual(os.listdir(self.path("saved")), [])
            self.assertEqual([n for n in os.listdir(self.dir) if n.startswith(".kinko-")], [])
        with self.assertRaises(kinko.KinkoError.InvalidArgument):
            self.client.download_file(stored.id, self.path("saved"))

    def test_cancelled_transfers_leave_nothing(self):
        content = data(6 * MIB)
        path = self.write("big.bin", content)
        before = {f.id for f in self.client.files()}
        with self.assertRaises(kinko.KinkoError.Cancelled):
            self.client.upload(path, progress=Recorder(lambda done: done < 2 * MIB))
        # The server keeps nothing of an upload cut short.
        self.assertEqual({f.id for f in self.client.files()}, before)

        stored = self.client.upload(path)
        link = kinko.Link.parse(self.client.share(
            stored.id, kinko.ShareOptions(expires_in_seconds=600)).link.expose_secret())
        partner = kinko.KinkoClient.for_link(link)
        with self.assertRaises(kinko.KinkoError.Cancelled):
            partner.download_link(link, self.path("out.bin"),
                                  progress=Recorder(lambda done: done < 2 * MIB))
        self.assertNoOutput("out.bin")
        token = kinko.CancelToken()
        token.cancel()
        with self.assertRaises(kinko.KinkoError.Cancelled):
            partner.download_link(link, self.path("out.bin"), cancel=token)
        self.assertNoOutput("out.bin")
        partner.download_link(link, self.path("out.bin"))
        self.assertEqual(self.read("out.bin"), content)


if __name__ == "__main__":
    unittest.main()
