// The Kinko partner page. The link secret lives in the URL fragment (#…), which the browser
// never sends; this script passes it to the server only in a request header or a POST body.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const match = location.pathname.match(/^\/s\/([0-9a-f]{32})$/);
  const secret = location.hash.replace(/^#/, "");
  const status = $("status");
  // A link pasted into this tab over an incomplete one changes only the fragment, which
  // does not load the page again: load it again to check the new link.
  window.addEventListener("hashchange", () => location.reload());

  function fail(text) {
    status.textContent = text;
    status.hidden = false;
  }
  function showError(text) {
    const e = $("error");
    e.textContent = text;
    e.hidden = !text;
  }
  function formatSize(n) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }
  async function errorCode(resp) {
    try { return (await resp.json()).error.code; } catch (_) { return "unknown"; }
  }
  function explain(code) {
    switch (code) {
      case "link_invalid": return "This link is not valid: it may be wrong, expired, revoked or used up. Ask the sender for a new one.";
      case "password_required": return "This file needs its password.";
      case "wrong_password": return "Wrong password. Too many wrong passwords lock the link.";
      case "rate_limited": return "Too many attempts. Wait a minute and try again.";
      case "not_recipient": return "This file is not encrypted to that key: it would not open with it. Nothing was counted. Check the key, or ask the sender.";
      case "bad_key": return "That is not a public key: it starts with age1 (kinko keygen prints yours).";
      default: return "The server could not answer (" + code + "). Try again later.";
    }
  }

  if (!match || !/^[0-9a-f]{64}$/.test(secret)) {
    fail("This link is incomplete. Copy the whole link, including the part after #.");
    return;
  }
  const share = match[1];
  const api = "/api/v1/links/" + share;

  async function load() {
    const resp = await fetch(api, {
      method: "POST",
      headers: { "Kinko-Link-Secret": secret },
      cache: "no-store",
      credentials: "omit",
    });
    if (!resp.ok) { fail(explain(await errorCode(resp))); return; }
    const info = await resp.json();
    $("name").textContent = info.name;
    $("size").textContent = formatSize(info.size);
    $("expires").textContent = new Date(info.expires * 1000).toLocaleString();
    if (info.downloads_left !== null && info.downloads_left !== undefined) {
      $("left").textContent = String(info.downloads_left);
      $("left").hidden = false;
      $("left-label").hidden = false;
    }
    if (info.downloads_left === 0) {
      // Used up: the form could only be refused, so say why instead of offering it.
      $("get").hidden = true;
      showError("No downloads are left on this link. Ask the sender for a new one.");
    }
    $("password-row").hidden = !info.password_required;
    if (info.recipient_bound) {
      $("bound-name").textContent = info.name + ".kinko";
      $("bound-hint").hidden = false;
      $("recipient-row").hidden = false;
    }
    status.hidden = true;
    $("details").hidden = false;
  }

  async function download(ev) {
    ev.preventDefault();
    const button = $("download");
    button.disabled = true;
    showError("");
    try {
      const headers = { "Kinko-Link-Secret": secret };
      const pw = $("password").value;
      if (!$("password-row").hidden && pw) { headers["Kinko-Password"] = encodeURIComponent(pw); }
      // A named key lets the server refuse, uncounted, a download that would not open for it.
      const key = $("recipient").value.trim().toLowerCase();
      if (!$("recipient-row").hidden && key) {
        if (!/^age1[02-9ac-hj-np-z]{58}$/.test(key)) { showError(explain("bad_key")); return; }
        headers["Kinko-Recipient"] = key;
      }
      const resp = await fetch(api + "/ticket", {
        method: "POST", headers, cache: "no-store", credentials: "omit",
      });
      if (!resp.ok) {
        const code = await errorCode(resp);
        if (code === "password_required") { $("password-row").hidden = false; }
        showError(explain(code));
        if (code === "password_required" || code === "wrong_password") {
          // Back to the field, its text selected to type over: the click took the focus to
          // the button, and disabling it dropped the focus. #error (role=alert) is still
          // announced, and is the field's description when the focus lands there.
          $("password").focus();
          $("password").select();
        }
        return;
      }
      const t = await resp.json();
      // A plain form POST: the browser saves the response to disk as it arrives.
      const form = $("fetch");
      form.action = "/s/" + share + "/download";
      $("f-secret").value = secret;
      $("f-ticket").value = t.ticket;
      form.submit();
      $("password").value = "";
      status.textContent = "Your download has started.";
      status.hidden = false;
      if (t.downloads_left !== null && t.downloads_left !== undefined) {
        $("left").textContent = String(t.downloads_left);
        if (t.downloads_left === 0) { $("get").hidden = true; }
      }
    } catch (e) {
      showError("The server could not be reached. Try again.");
    } finally {
      button.disabled = false;
    }
  }

  $("get").addEventListener("submit", download);
  load().catch(() => fail("The server could not be reached. Try again later."));
})();
