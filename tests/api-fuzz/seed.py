"""Uploads one file to a running `kinko serve --dev` and shares it, and adds a member; prints
the share id and the link secret (for the link operations' pass of tests/api-fuzz/run.sh) and
the member's id (for the server-wide pass, whose user operation otherwise only meets unknown
users).

usage: seed.py URL TOKEN
"""

import json
import sys
import urllib.request


def call(url: str, token: str, method: str, path: str, body: bytes, ctype: str) -> dict:
    req = urllib.request.Request(
        url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    f = call(url, token, "POST", "/api/v1/files?name=fuzz.txt", b"fuzz me\n" * 1000, "text/plain")
    # No download limit, a day to live: the pass must not use the share up.
    opts = json.dumps({"expires_in": 86400}).encode()
    s = call(url, token, "POST", f"/api/v1/files/{f['id']}/shares", opts, "application/json")
    base, _, secret = s["link"].partition("#")
    opts = json.dumps({"name": "fuzz member", "role": "member"}).encode()
    member = call(url, token, "POST", "/api/v1/admin/users", opts, "application/json")
    print(base.rsplit("/", 1)[1], secret, member["id"])


if __name__ == "__main__":
    main()
