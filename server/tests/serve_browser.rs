//! The partner page end to end in a real headless Chromium, driven through chromedriver over
//! the W3C WebDriver protocol (plain HTTP with `ureq`): the page shows the share, asks for the
//! password, refuses a wrong one, and the browser saves the exact bytes through the page's
//! form download. Chromium's own network log shows that the link secret never travels in a
//! URL, only in the `Kinko-Link-Secret` header and the download form's body, and that the page
//! loads nothing from anywhere else.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`;
//! CI installs them). Without them the test fails rather than skipping. To look at the page,
//! set `KINKO_SCREENSHOT_DIR`: the test saves its screenshots there.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TestServer;
use tempfile::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The upper bound of every wait. Generous: CI machines are small and busy.
const WAIT: Duration = Duration::from_secs(60);

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The partner page's policy, exactly as docs/API.md gives it.
const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The page's sentences (server/assets/partner.js).
const MSG_INVALID: &str = "This link is not valid: it may be wrong, expired, revoked or used up. \
    Ask the sender for a new one.";
const MSG_WRONG_PASSWORD: &str = "Wrong password. Too many wrong passwords lock the link.";
const MSG_INCOMPLETE: &str =
    "This link is incomplete. Copy the whole link, including the part after #.";
const MSG_STARTED: &str = "Your download has started.";
const MSG_USED_UP: &str = "No downloads are left on this link. Ask the sender for a new one.";
const MSG_NOT_RECIPIENT: &str = "This file is not encrypted to that key: it would not open with \
    it. Nothing was counted. Check the key, or ask the sender.";
const MSG_NO_SCRIPT: &str = "This page needs JavaScript to check the link and download the \
    file. Allow JavaScript for this site and reload the page.";
const MSG_BAD_KEY: &str =
    "That is not a public key: it starts with age1 (kinko keygen prints yours).";

/// 64 KiB chunks: 24 full chunks and a partial one.
const BIG: usize = 24 * 65536 + 4321;

/// Polls `probe` every 100 ms until it gives a value; fails after [`WAIT`] with `what` and the
/// last state the probe reported.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(state) if start.elapsed() > WAIT => {
                panic!("gave up after {WAIT:?} waiting for {what}; last state: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Incompressible pseudo-random test bytes (SplitMix64).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Standard base64 (WebDriver screenshots, CDP post data).
fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text
        .as_bytes()
        .iter()
        .filter(|c| !c.is_ascii_whitespace() && **c != b'=')
    {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters, like `encodeURIComponent`.
fn pct(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A free port on 127.0.0.1 (free when asked; chromedriver binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// chromedriver with one Chromium session. Dropping it quits the session and stops
/// chromedriver (and any Chromium left behind), also when a test panics.
struct Browser {
    driver: Option<Child>,
    base: String,
    session: Option<String>,
    agent: ureq::Agent,
    profile: PathBuf,
    downloads: PathBuf,
    driver_log: PathBuf,
    /// Holds the profile, the downloads and chromedriver's log; removed last.
    _dir: TempDir,
}

impl Browser {
    fn launch() -> Browser {
        Browser::launch_with(true)
    }

    /// A browser with JavaScript turned off (a browser setting some partners have).
    fn launch_without_javascript() -> Browser {
        Browser::launch_with(false)
    }

    fn launch_with(javascript: bool) -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: this test drives a real headless Chromium. Install it with \
                 `apt-get install chromium chromium-driver` (CI's .ci/run does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let downloads = dir.path().join("downloads");
        fs::create_dir(&profile).unwrap();
        fs::create_dir(&downloads).unwrap();
        let driver_log = dir.path().join("chromedriver.log");
        let log = fs::File::create(&driver_log).unwrap();
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut b = Browser {
            driver: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            agent,
            profile,
            downloads,
            driver_log,
            _dir: dir,
        };

        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = b.driver.as_mut().unwrap().try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it was ready; its log:\n{}",
                    b.driver_log_text()
                );
            }
            if b.call("GET", "/status", None)
                .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "chromedriver did not get ready within {WAIT:?}; its log:\n{}",
                b.driver_log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1000,800",
                    format!("--user-data-dir={}", b.profile.display()),
                ],
                "prefs": {
                    "download.default_directory": b.downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "profile.managed_default_content_settings.javascript":
                        if javascript { 1 } else { 2 },
                },
            },
            "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
        }}});
        let created = b.call("POST", "/session", Some(&caps)).unwrap_or_else(|e| {
            panic!(
                "no Chromium session: {e}\nchromedriver's log:\n{}",
                b.driver_log_text()
            )
        });
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        b.session = Some(id.to_owned());
        b
    }

    fn driver_log_text(&self) -> String {
        fs::read_to_string(&self.driver_log).unwrap_or_default()
    }

    /// One WebDriver request; the whole JSON answer, or the error it reports.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json; charset=utf-8");
        let sent = match body {
            Some(b) => self
                .agent
                .run(req.body(b.to_string().into_bytes()).unwrap()),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = sent.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(512 << 20)
            .read_to_string()
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: not JSON ({e}): {text}"))?;
        if status != 200 {
            return Err(format!("{method} {path}: {status} {}", v["value"]));
        }
        Ok(v)
    }

    /// A command of this session; its `value`.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let sid = self.session.as_deref().expect("a session");
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let mut v = self
            .call(method, &format!("/session/{sid}{path}"), body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver: {e}"));
        v["value"].take()
    }

    /// Loads `url` (through about:blank, so that a link differing only in its fragment still
    /// loads a fresh page).
    fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": "about:blank"})));
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// The rendered text of `css` ("" while hidden).
    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        let v = self.cmd("GET", &format!("/element/{e}/text"), None);
        v.as_str().unwrap_or_default().to_owned()
    }

    fn displayed(&self, css: &str) -> bool {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/displayed"), None) == true
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), None);
    }

    /// The value `js` (a function body) returns, run in the page.
    fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// Replaces the value of the input `css` by typing `text`.
    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Waits until `css` is displayed with exactly `expected` as its text.
    fn wait_text(&self, css: &str, expected: &str) {
        wait_for(&format!("{css} to read {expected:?}"), || {
            let t = self.text(css);
            if t == expected {
                Ok(())
            } else {
                Err(format!(
                    "{css} reads {t:?}; #status reads {:?}; #error reads {:?}",
                    self.text("#status"),
                    self.text("#error")
                ))
            }
        });
    }

    /// A PNG of the page. Kept in `$KINKO_SCREENSHOT_DIR/<name>.png` when that is set.
    fn screenshot(&self, name: &str) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("base64 screenshot"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        if let Some(dir) = std::env::var_os("KINKO_SCREENSHOT_DIR") {
            fs::create_dir_all(&dir).unwrap();
            fs::write(Path::new(&dir).join(format!("{name}.png")), &png).unwrap();
        }
        png
    }

    /// The entries of a WebDriver log type since the last call.
    fn log(&self, kind: &str) -> Vec<Value> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": kind})));
        v.as_array().cloned().unwrap_or_default()
    }

    /// The DevTools events of the performance log since the last call.
    fn devtools_events(&self) -> Vec<Value> {
        self.log("performance")
            .into_iter()
            .map(|entry| {
                let text = entry["message"].as_str().expect("a log message");
                let mut m: Value = serde_json::from_str(text).expect("a DevTools event");
                m["message"].take()
            })
            .collect()
    }

    /// The names of the files in the download folder.
    fn download_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.downloads)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Waits until Chromium has finished saving `name` (it writes `*.crdownload` first, then
    /// renames) with `len` bytes; returns its contents.
    fn wait_download(&self, name: &str, len: usize) -> Vec<u8> {
        let path = self.downloads.join(name);
        wait_for(&format!("{name:?} to be downloaded"), || {
            let names = self.download_names();
            let partial = names.iter().any(|n| n.ends_with(".crdownload"));
            match fs::metadata(&path) {
                Ok(m) if m.len() == len as u64 && !partial => Ok(fs::read(&path).unwrap()),
                Ok(m) => Err(format!("{} of {len} bytes; folder: {names:?}", m.len())),
                Err(_) => Err(format!("folder: {names:?}")),
            }
        })
    }

    /// Chromium processes still using this profile (left behind if the session did not quit).
    fn leftover_chromium(&self) -> Vec<u32> {
        let marker = format!("--user-data-dir={}", self.profile.display());
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(sid) = self.session.take() {
            let _ = self.call("DELETE", &format!("/session/{sid}"), None);
        }
        if let Some(mut child) = self.driver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.leftover_chromium() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// One `Network.requestWillBeSent` event, reduced to what the checks need.
#[derive(Debug)]
struct Sent {
    method: String,
    url: String,
    /// The document the request is for (a navigation's own URL), without its fragment.
    document: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn requests_sent(events: &[Value]) -> Vec<Sent> {
    events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .map(|e| {
            let r = &e["params"]["request"];
            let headers = r["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body = r["postData"].as_str().map(str::to_owned).or_else(|| {
                let entries = r["postDataEntries"].as_array()?;
                let bytes: Vec<u8> = entries
                    .iter()
                    .filter_map(|p| p["bytes"].as_str())
                    .flat_map(base64_decode)
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            });
            Sent {
                method: r["method"].as_str().unwrap_or_default().to_owned(),
                url: r["url"].as_str().unwrap_or_default().to_owned(),
                document: e["params"]["documentURL"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                headers,
                body,
            }
        })
        .collect()
}

/// The headers Chromium actually put on the wire (`Network.requestWillBeSentExtraInfo`).
fn wire_headers(events: &[Value]) -> Vec<Vec<(String, String)>> {
    events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSentExtraInfo")
        .map(|e| {
            e["params"]["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Uploads `content` as `name` (any UTF-8) with a content type; returns the file id.
fn upload(srv: &TestServer, token: &str, name: &str, content_type: &str, content: &[u8]) -> String {
    let auth = format!("Bearer {token}");
    let r = srv.request(
        "POST",
        &format!("/api/v1/files?name={}", pct(name)),
        &[("authorization", &auth), ("content-type", content_type)],
        Some(content),
    );
    assert_eq!(r.status, 201, "upload: {}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

/// How many downloads the share has counted (the owner's view).
fn downloads_counted(srv: &TestServer, token: &str, file: &str, share: &str) -> u64 {
    let r = srv.authed(token, "GET", &format!("/api/v1/files/{file}/shares"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let shares = r.json()["shares"].as_array().unwrap().clone();
    let s = shares
        .iter()
        .find(|s| s["id"] == share)
        .unwrap_or_else(|| panic!("share {share} not listed"));
    s["downloads"].as_u64().unwrap()
}

#[test]
fn partner_page_in_headless_chromium() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let browser = Browser::launch();
    let mut events = Vec::new();

    // Files: a multi-chunk binary under a non-ASCII name, and a small text file.
    let big_name = "Quarterly plan 金庫 Q3.bin";
    let big = random_bytes(BIG, 0x006b_696e_6b6f);
    let big_file = upload(&srv, &alice, big_name, "application/octet-stream", &big);
    let note_name = "notes 2025.txt";
    let note: Vec<u8> = (0..4000)
        .flat_map(|i| format!("line {i}: the partner page saves text too\n").into_bytes())
        .collect();
    let note_file = upload(&srv, &alice, note_name, "text/plain", &note);

    let password = "correct horse 金庫 battery";
    let wrong_password = "correct horse";
    let (pw_share, pw_secret, pw_link) = srv.share(
        &alice,
        &big_file,
        json!({"expires_in": 3600, "password": password, "max_downloads": 3}),
    );
    let (open_share, open_secret, open_link) = srv.share(
        &alice,
        &note_file,
        json!({"expires_in": 3600, "max_downloads": 1}),
    );
    let (gone_share, gone_secret, gone_link) =
        srv.share(&alice, &big_file, json!({"expires_in": 3600}));
    let link_secrets = [&pw_secret, &open_secret, &gone_secret];

    // (c) The page's headers, fetched directly.
    let page = srv.request("GET", &format!("/s/{pw_share}"), &[], None);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-security-policy"), Some(STRICT_CSP));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.header("content-type")
    );
    for s in link_secrets {
        assert!(!page.text().contains(s.as_str()));
    }

    // (a) A password-protected share of a multi-chunk file.
    browser.open(&pw_link);
    browser.wait_text("#name", big_name);
    assert_eq!(browser.text("#size"), "1.5 MiB");
    assert_eq!(browser.text("#left"), "3");
    assert!(browser.displayed("#password"), "the password field shows");
    assert!(!browser.displayed("#status"));
    assert!(!browser.displayed("#error"));
    browser.screenshot("1-password-share");

    // A wrong password: the page says so, nothing is counted, nothing downloads.
    browser.type_into("#password", wrong_password);
    browser.click("#download");
    browser.wait_text("#error", MSG_WRONG_PASSWORD);
    // The focus is back in the password field, its text selected to type over; the message
    // is announced (role=alert) and describes the field.
    assert_eq!(
        browser.script(
            "const e = document.activeElement; \
             return [e.id || e.tagName, e.selectionStart ?? null, e.selectionEnd ?? null, \
             (e.value ?? \"\").length];"
        ),
        json!(["password", 0, wrong_password.len(), wrong_password.len()])
    );
    assert_eq!(
        browser.script(
            "return [document.getElementById('error').getAttribute('role'), \
             document.getElementById('password').getAttribute('aria-describedby')];"
        ),
        json!(["alert", "error"])
    );
    browser.screenshot("2-wrong-password");
    assert_eq!(downloads_counted(&srv, &alice, &big_file, &pw_share), 0);
    events.extend(browser.devtools_events());
    assert!(
        requests_sent(&events)
            .iter()
            .all(|r| !r.url.ends_with("/download")),
        "a download was requested after a wrong password"
    );
    assert_eq!(browser.download_names(), Vec::<String>::new());

    // The right password: the browser saves exactly the file's bytes under its name.
    browser.type_into("#password", password);
    browser.click("#download");
    let got = browser.wait_download(big_name, big.len());
    assert!(got == big, "the downloaded bytes differ from the upload");
    browser.wait_text("#status", MSG_STARTED);
    assert_eq!(browser.text("#left"), "2");
    assert!(!browser.displayed("#error"));
    browser.screenshot("3-downloaded");
    assert_eq!(downloads_counted(&srv, &alice, &big_file, &pw_share), 1);

    // (b) A share without a password downloads directly.
    browser.open(&open_link);
    browser.wait_text("#name", note_name);
    assert!(!browser.displayed("#password"), "no password field");
    assert_eq!(browser.text("#left"), "1");
    browser.click("#download");
    let got = browser.wait_download(note_name, note.len());
    assert!(got == note, "the downloaded text differs from the upload");
    browser.wait_text("#status", MSG_STARTED);
    assert_eq!(browser.text("#left"), "0");
    assert!(!browser.displayed("#download"), "nothing left to download");
    assert_eq!(
        browser.download_names(),
        vec![big_name.to_owned(), note_name.to_owned()]
    );
    // Used up: the same link still shows the file, says why it cannot be downloaded, and
    // offers no form that could only be refused.
    browser.open(&open_link);
    browser.wait_text("#error", MSG_USED_UP);
    assert_eq!(browser.text("#name"), note_name);
    assert_eq!(browser.text("#left"), "0");
    assert!(!browser.displayed("#download"));
    browser.screenshot("4-used-up");

    // (f) A revoked link shows the invalid-link message.
    let r = srv.authed(
        &alice,
        "DELETE",
        &format!("/api/v1/shares/{gone_share}"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    browser.open(&gone_link);
    browser.wait_text("#status", MSG_INVALID);
    assert!(!browser.displayed("#details"));
    browser.screenshot("5-revoked");

    // So does a wrong secret; a link without its secret says it is incomplete.
    let wrong_secret = "0".repeat(64);
    browser.open(&format!("{}/s/{pw_share}#{wrong_secret}", srv.url));
    browser.wait_text("#status", MSG_INVALID);
    browser.open(&format!("{}/s/{pw_share}", srv.url));
    browser.wait_text("#status", MSG_INCOMPLETE);
    assert!(!browser.displayed("#details"));
    events.extend(browser.devtools_events());

    // The browser console: no CSP violation, no script error.
    let console = browser.log("browser");
    let complaints: Vec<&Value> = console
        .iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            !(m.contains("/favicon.ico") || m.contains("the server responded with a status of"))
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "the console has complaints: {complaints:#?}"
    );

    // (c, d) Chromium's network log: every request made for a document of the server (the
    // log also holds Chromium's own start page, which is not ours to check).
    let origin = format!("{}/", srv.url);
    let sent: Vec<Sent> = requests_sent(&events)
        .into_iter()
        .filter(|r| r.document.starts_with(&origin))
        .collect();
    let pw_encoded = pct(password);
    let mut secret_headers = 0;
    let mut form_bodies = 0;
    let mut tickets = Vec::new();
    for r in &sent {
        // First-party only.
        assert!(
            r.url.starts_with(&origin) || r.url.starts_with("about:") || r.url.starts_with("data:"),
            "the page loaded a third-party resource: {} {}",
            r.method,
            r.url
        );
        assert!(
            !r.url.contains('#'),
            "a request URL with a fragment: {}",
            r.url
        );
        assert!(
            !r.url.contains('?'),
            "a request URL with a query: {}",
            r.url
        );
        for s in link_secrets {
            assert!(!r.url.contains(s.as_str()), "a secret in a URL: {}", r.url);
        }
        for (k, v) in &r.headers {
            // DevTools shows a withheld referrer as an empty Referer.
            assert!(
                !k.eq_ignore_ascii_case("referer") || v.is_empty(),
                "a Referer header on {}: {v}",
                r.url
            );
            for s in link_secrets {
                if v.contains(s.as_str()) {
                    assert!(
                        k.eq_ignore_ascii_case("kinko-link-secret") && v == s.as_str(),
                        "the link secret in header {k} of {} {}",
                        r.method,
                        r.url
                    );
                    assert_eq!(r.method, "POST", "{}", r.url);
                    assert!(
                        r.url.starts_with(&format!("{}/api/v1/links/", srv.url)),
                        "{}",
                        r.url
                    );
                    secret_headers += 1;
                }
            }
            if v.contains(&pw_encoded) || v.contains(password) || v.contains(wrong_password) {
                assert!(
                    k.eq_ignore_ascii_case("kinko-password"),
                    "the password in header {k} of {}",
                    r.url
                );
                assert!(r.url.ends_with(&format!("/api/v1/links/{pw_share}/ticket")));
            }
        }
        if let Some(body) = &r.body {
            assert!(!body.contains(wrong_password) && !body.contains(&pw_encoded));
            if link_secrets.iter().any(|s| body.contains(s.as_str())) {
                let download = format!("{}/s/", srv.url);
                assert!(
                    r.method == "POST"
                        && r.url.starts_with(&download)
                        && r.url.ends_with("/download"),
                    "the link secret in the body of {} {}",
                    r.method,
                    r.url
                );
                let fields: Vec<(&str, &str)> =
                    body.split('&').filter_map(|f| f.split_once('=')).collect();
                let secret = fields.iter().find(|(k, _)| *k == "secret").unwrap().1;
                assert!(
                    r.url == format!("{}/s/{pw_share}/download", srv.url) && secret == pw_secret
                        || r.url == format!("{}/s/{open_share}/download", srv.url)
                            && secret == open_secret,
                    "a form body with the wrong secret for {}",
                    r.url
                );
                let ticket = fields.iter().find(|(k, _)| *k == "ticket").unwrap().1;
                tickets.push(ticket.to_owned());
                form_bodies += 1;
            }
        }
    }
    let mut wire_secret_headers = 0;
    for headers in wire_headers(&events) {
        for (k, v) in &headers {
            assert!(
                !k.eq_ignore_ascii_case("referer"),
                "a Referer on the wire: {v}"
            );
            for s in link_secrets {
                if v.contains(s.as_str()) {
                    assert!(
                        k.eq_ignore_ascii_case("kinko-link-secret"),
                        "the link secret on the wire in header {k}"
                    );
                    wire_secret_headers += 1;
                }
            }
        }
    }
    // Details for both shares (twice for the used-up one) and the wrong secret, tickets for
    // the wrong password, the right one and the open share.
    assert_eq!(
        secret_headers, 7,
        "requests with the link secret in Kinko-Link-Secret"
    );
    assert_eq!(
        wire_secret_headers, 7,
        "Kinko-Link-Secret headers on the wire"
    );
    assert_eq!(form_bodies, 2, "two form downloads");
    let page_loads = sent
        .iter()
        .filter(|r| r.method == "GET" && r.url.contains("/s/"))
        .count();
    assert_eq!(page_loads, 6, "page loads: {sent:#?}");

    // (e) No secret reached the server's log.
    let mut needles: Vec<&str> = vec![
        &alice,
        &srv.admin_token,
        &pw_secret,
        &open_secret,
        &gone_secret,
        password,
        &pw_encoded,
    ];
    needles.extend(tickets.iter().map(String::as_str));
    srv.assert_log_free_of(&needles);
    srv.assert_no_server_errors();

    let mut summary = String::new();
    for r in &sent {
        let _ = writeln!(summary, "{} {}", r.method, r.url);
    }
    eprintln!("requests the page made:\n{summary}");
}

/// A recipient-bound share: the page says the file comes encrypted to the partner's key and
/// offers to name that key. A key the share is not bound to is refused before anything is
/// counted, a malformed one before anything is sent; the partner's own key downloads the
/// envelope, which opens with the partner's identity to the uploaded bytes.
#[test]
fn a_recipient_bound_share_on_the_partner_page() {
    use kinko_core::envelope::{Keyring, Opener};
    use kinko_core::keys::Identity;

    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let name = "contract 金庫.pdf";
    let content = random_bytes(3 * 65536 + 17, 0x0062_6f75_6e64);
    let file = upload(&srv, &alice, name, "application/pdf", &content);
    let partner = Identity::generate();
    let outsider = Identity::generate();
    let partner_key = partner.to_public().to_string();
    let (share, secret, link) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "recipients": [partner_key]}),
    );
    let browser = Browser::launch();
    browser.open(&link);
    browser.wait_text("#name", name);
    assert!(browser.displayed("#bound-hint"));
    assert!(browser.displayed("#recipient"), "the key field shows");

    browser.type_into("#recipient", &outsider.to_public().to_string());
    browser.click("#download");
    browser.wait_text("#error", MSG_NOT_RECIPIENT);
    browser.screenshot("6-not-recipient");
    browser.type_into("#recipient", "age1notakey");
    browser.click("#download");
    browser.wait_text("#error", MSG_BAD_KEY);
    assert_eq!(downloads_counted(&srv, &alice, &file, &share), 0);
    assert_eq!(browser.download_names(), Vec::<String>::new());

    // The partner's key (as pasted, with spaces around it). The envelope's length, from a
    // one-byte range of it (a counted download of its own).
    let probe = srv.request(
        "GET",
        &format!("/api/v1/links/{share}/content"),
        &[("kinko-link-secret", &secret), ("range", "bytes=0-0")],
        None,
    );
    assert_eq!(probe.status, 206, "{}", probe.text());
    let total: usize = probe
        .header("content-range")
        .and_then(|r| r.rsplit('/').next())
        .and_then(|n| n.parse().ok())
        .expect("a Content-Range total");
    browser.type_into("#recipient", &format!("  {partner_key} "));
    browser.click("#download");
    let envelope = browser.wait_download(&format!("{name}.kinko"), total);
    browser.wait_text("#status", MSG_STARTED);
    assert_eq!(downloads_counted(&srv, &alice, &file, &share), 2);
    let keyring = Keyring::new().identity(partner);
    let mut opened = Vec::new();
    Opener::new(&envelope[..], &keyring)
        .expect("the envelope opens with the partner's identity")
        .copy_to(&mut opened)
        .unwrap();
    assert!(opened == content, "the opened bytes differ from the upload");

    // A name with a right-to-left override shows as it is saved, with `_` for the override:
    // as stored it would read `invoiceexe.pdf`.
    let disguised = upload(
        &srv,
        &alice,
        "invoice\u{202E}fdp.exe",
        "application/pdf",
        b"MZ",
    );
    let (_, disguised_secret, disguised_link) =
        srv.share(&alice, &disguised, json!({"expires_in": 3600}));
    browser.open(&disguised_link);
    browser.wait_text("#name", "invoice_fdp.exe");

    srv.assert_log_free_of(&[&alice, &secret, &disguised_secret]);
    srv.assert_no_server_errors();
}

/// A partner told the link is incomplete pastes the whole link into the same tab: only the
/// fragment changes, so the browser does not load the page again, and the page has to look
/// at the new fragment itself. Without JavaScript the page says it needs it, instead of
/// "Checking the link…" for ever.
#[test]
fn the_partner_page_after_a_pasted_fragment_and_without_javascript() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let name = "minutes.txt";
    let file = upload(
        &srv,
        &alice,
        name,
        "text/plain",
        b"minutes of the meeting\n",
    );
    let (share, _secret, link) = srv.share(&alice, &file, json!({"expires_in": 3600}));

    let browser = Browser::launch();
    browser.open(&format!("{}/s/{share}", srv.url));
    browser.wait_text("#status", MSG_INCOMPLETE);
    // The whole link, typed into the address bar of the same tab.
    browser.cmd("POST", "/url", Some(json!({"url": link})));
    browser.wait_text("#name", name);
    assert!(!browser.displayed("#status"));
    // A link cut short in the same way shows the incomplete-link message again.
    browser.cmd(
        "POST",
        "/url",
        Some(json!({"url": format!("{}/s/{share}#{}", srv.url, "ab".repeat(10))})),
    );
    browser.wait_text("#status", MSG_INCOMPLETE);
    assert!(!browser.displayed("#details"));
    drop(browser);

    let browser = Browser::launch_without_javascript();
    browser.open(&link);
    browser.wait_text("#no-script", MSG_NO_SCRIPT);
    assert!(
        !browser.displayed("#status"),
        "no 'Checking the link…' without a script"
    );
    assert!(!browser.displayed("#details"));
    browser.screenshot("7-no-javascript");
    srv.assert_no_server_errors();
}
