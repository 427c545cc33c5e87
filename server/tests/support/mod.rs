//! A real `kinko serve` for end-to-end tests: the binary in a child process, its own data
//! folder, a free port on 127.0.0.1, and plain HTTP requests over real TCP.
//!
//! Every server runs with `--test-clock`, so tests move time with [`TestServer::advance`]
//! instead of sleeping. Its stderr (the log) and stdout are kept in files, so tests can check
//! that no secret ever reached a log line ([`TestServer::assert_log_free_of`]). Dropping the server
//! stops it with SIGTERM; [`TestServer::stop`] does the same and checks that it exited well.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub const KINKO: &str = env!("CARGO_BIN_EXE_kinko");

/// A running server.
pub struct TestServer {
    pub url: String,
    pub admin_token: String,
    pub dir: TempDir,
    child: Option<Child>,
    /// Copies the server's stdout to `server.out` until the server closes it.
    stdout_copier: Option<std::thread::JoinHandle<()>>,
    agent: ureq::Agent,
}

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The API error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Options for [`TestServer::start_with`].
#[derive(Debug, Default)]
pub struct Options {
    /// Extra `kinko serve` arguments.
    pub args: Vec<String>,
    /// A TOML configuration file's contents.
    pub config: Option<String>,
    /// `KINKO_LOG` for the server (`debug` when `None`).
    pub log: Option<String>,
}

impl TestServer {
    /// A `--dev` server with the test clock.
    pub fn start() -> TestServer {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> TestServer {
        Self::start_in(tempfile::tempdir().unwrap(), opts)
    }

    /// Stops this server and starts a new one on the same folder (its vault, development
    /// master key and admin token file), with `opts`.
    pub fn restart(mut self, opts: Options) -> TestServer {
        if self.child.is_some() {
            assert!(self.stop().success(), "stopped cleanly");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_in(dir, opts)
    }

    fn start_in(dir: TempDir, opts: Options) -> TestServer {
        let mut cmd = Command::new(KINKO);
        cmd.current_dir(dir.path())
            .args(["serve", "--dev", "--test-clock", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("dev/data"))
            .args(&opts.args)
            .env("KINKO_LOG", opts.log.as_deref().unwrap_or("debug"))
            .env_remove("KINKO_SERVE_CONFIG")
            .env_remove("KINKO_KEK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.path().join("server.log")).unwrap());
        if let Some(text) = &opts.config {
            let p = dir.path().join("kinko.toml");
            fs::write(&p, text).unwrap();
            cmd.arg("--config").arg(p);
        }
        let mut child = cmd.spawn().expect("kinko serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut out = fs::File::create(dir.path().join("server.out")).unwrap();
        let (mut url, mut token) = (None, None);
        while url.is_none() || token.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let log = fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("kinko serve exited before it was ready; log:\n{log}");
            };
            writeln!(out, "{line}").unwrap();
            if let Some(u) = line.trim().strip_prefix("URL:") {
                url = Some(u.trim().to_owned());
            }
            if let Some(t) = line.trim().strip_prefix("Admin token:") {
                token = Some(t.trim().to_owned());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        let stdout_copier = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
            }
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        TestServer {
            url: url.unwrap(),
            admin_token: token.unwrap(),
            dir,
            child: Some(child),
            stdout_copier: Some(stdout_copier),
            agent,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("dev/data")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap()
    }

    /// The server's stdout so far (all of it once [`TestServer::stop`] has returned).
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.out")).unwrap()
    }

    /// A request. `body` is sent as is (set `content-type` in `headers` for JSON).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let url = format!("{}{path}", self.url);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(b) => self.agent.run(builder.body(b.to_vec()).unwrap()),
            // ureq sends a POST without a body as an empty chunked body, whose end goes out
            // after the head. A handler that answers before hyper has read that end leaves it
            // unable to keep the connection (it would have to wait for the body), so it closes
            // it, and a request that ureq sends on the closed connection meanwhile fails with
            // "Peer disconnected". Kinko's own client sends `content-length: 0`; so does this.
            None if matches!(method, "POST" | "PUT" | "PATCH") => {
                self.agent.run(builder.body(Vec::new()).unwrap())
            }
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A request with `token` as the bearer.
    pub fn authed(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let auth = format!("Bearer {token}");
        let text = body.map(|b| b.to_string());
        let mut headers = vec![("authorization", auth.as_str())];
        if text.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.request(method, path, &headers, text.as_deref().map(str::as_bytes))
    }

    /// As the admin.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.authed(&self.admin_token, method, path, body)
    }

    /// Uploads `data` as `name` with `token`; returns the file id.
    pub fn upload(&self, token: &str, name: &str, data: &[u8]) -> String {
        let auth = format!("Bearer {token}");
        let path = format!("/api/v1/files?name={}", name.replace(' ', "%20"));
        let r = self.request(
            "POST",
            &path,
            &[("authorization", &auth), ("content-type", "text/plain")],
            Some(data),
        );
        assert_eq!(r.status, 201, "upload: {}", r.text());
        r.json()["id"].as_str().unwrap().to_owned()
    }

    /// Creates a share; returns (share id, link secret, full link).
    pub fn share(&self, token: &str, file: &str, opts: Value) -> (String, String, String) {
        let r = self.authed(
            token,
            "POST",
            &format!("/api/v1/files/{file}/shares"),
            Some(&opts),
        );
        assert_eq!(r.status, 201, "share: {}", r.text());
        let link = r.json()["link"].as_str().unwrap().to_owned();
        let (base, secret) = link.split_once('#').unwrap();
        let id = base.rsplit('/').next().unwrap().to_owned();
        (id, secret.to_owned(), link)
    }

    /// A member user with a token; returns (user id, token).
    pub fn member(&self, name: &str) -> (String, String) {
        let r = self.admin(
            "POST",
            "/api/v1/admin/users",
            Some(&serde_json::json!({"name": name, "role": "member"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let r = self.admin(
            "POST",
            &format!("/api/v1/admin/users/{id}/tokens"),
            Some(&serde_json::json!({"label": "test"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        (id, r.json()["token"].as_str().unwrap().to_owned())
    }

    /// Downloads a link share the way the CLI does: ticket, then content.
    /// `POST /api/v1/links/{share}` with the link's secret: what the partner page shows.
    pub fn link_info(&self, share: &str, secret: &str) -> Resp {
        self.request(
            "POST",
            &format!("/api/v1/links/{share}"),
            &[("kinko-link-secret", secret)],
            None,
        )
    }

    pub fn link_download(&self, share: &str, secret: &str, password: Option<&str>) -> Resp {
        let mut h = vec![("kinko-link-secret", secret)];
        if let Some(p) = password {
            h.push(("kinko-password", p));
        }
        let t = self.request("POST", &format!("/api/v1/links/{share}/ticket"), &h, None);
        if t.status != 200 {
            return t;
        }
        let ticket = t.json()["ticket"].as_str().unwrap().to_owned();
        self.request(
            "GET",
            &format!("/api/v1/links/{share}/content"),
            &[("kinko-link-secret", secret), ("kinko-ticket", &ticket)],
            None,
        )
    }

    /// `GET` of a link's content with its ticket (a re-read that counts nothing) and `range`.
    pub fn ranged_by_ticket(&self, share: &str, secret: &str, ticket: &str, range: &str) -> Resp {
        self.request(
            "GET",
            &format!("/api/v1/links/{share}/content"),
            &[
                ("kinko-link-secret", secret),
                ("kinko-ticket", ticket),
                ("range", range),
            ],
            None,
        )
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, secs: u64) {
        let r = self.admin(
            "POST",
            "/api/v1/admin/clock",
            Some(&serde_json::json!({"advance": secs})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Uploads whose blob is being written (temporaries under `blobs/.tmp`).
    pub fn uploads_in_progress(&self) -> usize {
        fs::read_dir(self.data_dir().join("blobs/.tmp"))
            .unwrap()
            .count()
    }

    /// Published blobs and leftover temporaries in the data directory.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir().join("blobs"), &mut out);
        out
    }

    /// No answer so far had a 5xx status (from the server's own metrics).
    pub fn assert_no_server_errors(&self) {
        let r = self.request("GET", "/metrics", &[], None);
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        let m = r.text();
        let bad: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with("kinko_http_requests_total") && l.contains("status=\"5"))
            .collect();
        assert!(bad.is_empty(), "server errors: {bad:?}");
    }

    /// None of `secrets` appears in the server's log.
    pub fn assert_log_free_of(&self, secrets: &[&str]) {
        let log = self.log();
        for s in secrets {
            assert!(!s.is_empty());
            assert!(!log.contains(s), "a secret reached the log: {s}");
        }
    }

    /// Stops the server with SIGTERM and waits; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate(&child);
        let status = child.wait().unwrap();
        if let Some(copier) = self.stdout_copier.take() {
            copier.join().expect("stdout copied");
        }
        status
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

/// Sends SIGTERM.
pub fn terminate(child: &Child) {
    terminate_pid(child.id());
}

/// Sends SIGTERM to a process.
pub fn terminate_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Sends `signal` ("INT", "TERM", "HUP") to a process, which must be there to get it.
#[track_caller]
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// The signal's number ("INT", "TERM", "HUP").
fn signal_number(signal: &str) -> u32 {
    match signal {
        "HUP" => 1,
        "INT" => 2,
        "TERM" => 15,
        other => panic!("no number for SIG{other}"),
    }
}

/// Whether this test process inherited `signal` as ignored, as SIGHUP is under `nohup`: its
/// children inherit that too, and `kinko` rightly keeps such a signal ignored, so a test that
/// sends it would wait for ever. Such a test skips that signal (and says so).
pub fn inherited_as_ignored(signal: &str) -> bool {
    let ignored = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    let ignored = ignored & (1 << (signal_number(signal) - 1)) != 0;
    if ignored {
        eprintln!("SIG{signal} is ignored in this test run (nohup?): not tested");
    }
    ignored
}

/// Asserts that `status` is the end of a process by `signal` ("INT", "TERM", "HUP"), which a
/// shell shows as `128 + number`, and not an exit with that code: after a Ctrl-C, a shell goes
/// on with its script when the child exited, and stops when the signal ended it.
#[track_caller]
pub fn assert_ended_by(status: std::process::ExitStatus, signal: &str, context: &str) {
    use std::os::unix::process::ExitStatusExt;
    let number = i32::try_from(signal_number(signal)).unwrap();
    assert_eq!(
        (status.code(), status.signal()),
        (None, Some(number)),
        "{context}: {status}, expected an end by SIG{signal}"
    );
}

/// Waits (at most 30 s) until `dir` holds a `.kinko-*` temporary file with data in it; fails
/// if `child` ends first.
#[track_caller]
pub fn wait_for_temp_output(dir: &Path, child: &mut Child) {
    for _ in 0..3000 {
        let has_data = fs::read_dir(dir).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".kinko-")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
        if has_data {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("kinko ended before it wrote anything ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no temporary output appeared");
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            for _ in 0..100 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Makes a client `kinko` command independent of the caller's environment: it runs in `dir`,
/// keeps its client configuration in `dir/client.toml`, and sees no server, token, password or
/// proxy from the environment.
pub fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.current_dir(dir)
        .env("KINKO_CONFIG", dir.join("client.toml"))
        .env_remove("KINKO_SERVER")
        .env_remove("KINKO_TOKEN")
        .env_remove("KINKO_SHARE_PASSWORD")
        .env_remove("KINKO_PASSPHRASE");
    for proxy in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(proxy);
    }
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}
