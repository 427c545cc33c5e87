//! The router, the shared state, and the middleware every request goes through: request id,
//! one log line, metrics, the in-flight limit and the security headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use kinko_core::vault::{ApiToken, Ctx, Timestamp, Vault};
use tokio::sync::Semaphore;

use super::config::Limits;
use super::error::{ApiError, ErrorCode};
use super::metrics::Metrics;
use super::proxy::{Networks, TrustedProxies};
use super::ratelimit::RateLimiter;
use super::workers::{GroupCommit, VaultWorkers};
use super::{admin, files, links, page};

/// The server's clock: wall time plus an offset that only `--test-clock` servers can move.
#[derive(Debug)]
pub(crate) struct Clock {
    offset: AtomicU64,
    adjustable: bool,
    started: Instant,
}

impl Clock {
    pub(crate) fn new(adjustable: bool) -> Self {
        Clock {
            offset: AtomicU64::new(0),
            adjustable,
            started: Instant::now(),
        }
    }
    /// Now, as the vault sees it.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::now().plus(self.offset.load(Ordering::Relaxed))
    }
    /// Milliseconds on a monotonic clock, for rate limits.
    pub(crate) fn mono_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    pub(crate) fn adjustable(&self) -> bool {
        self.adjustable
    }
    /// Moves the clock forward (test servers only).
    pub(crate) fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) inner: Arc<Shared>,
}

/// The shared part of [`AppState`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) vault: Arc<Vault>,
    pub(crate) clock: Clock,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    pub(crate) link_limiter: RateLimiter,
    pub(crate) auth_limiter: RateLimiter,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Uploads streaming at once ([`Limits::max_uploads`]).
    pub(crate) uploads: Semaphore,
    /// Link decisions that check a share password run Argon2 (tens of MiB and milliseconds
    /// each): at most this many at once, one per core, so a burst of them, from anyone holding
    /// a link, queues instead of taking the machine's memory.
    pub(crate) argon2: Semaphore,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub(crate) proxies: TrustedProxies,
    /// Who may read /metrics (the client as seen after the proxies).
    pub(crate) metrics_from: Networks,
    /// The threads that decide link requests, and the flusher that makes their decisions
    /// durable ([`super::workers`]).
    pub(crate) workers: VaultWorkers,
    pub(crate) group_commit: GroupCommit,
    /// Base of share links, without a trailing slash.
    pub(crate) public_url: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.inner
    }
}

impl AppState {
    /// Runs a vault call on the blocking pool (sled commits fsync).
    pub(crate) async fn vault<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> T + Send + 'static,
    {
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || f(&vault))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "vault task failed");
                ApiError::internal()
            })
    }
}

/// The client's address, inserted by the connection loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);

/// The client's IP address (for rate limits and the audit log).
pub(crate) fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// An authenticated employee: the vault's [`Ctx`] for this request.
#[derive(Debug)]
pub(crate) struct Caller(pub(crate) Ctx);

/// An axum extractor's own refusal (a path segment or query string it cannot decode), which
/// comes as `text/plain`, as the JSON error every other refusal is: `400 invalid` with axum's
/// reason as the message.
async fn as_json_error(resp: Response) -> Response {
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let reason = String::from_utf8_lossy(&body);
    let reason = if reason.trim().is_empty() {
        "the request is malformed".to_owned()
    } else {
        reason.trim().to_owned()
    };
    ApiError::invalid(reason).into_response()
}

/// The router's `405` (empty body) as the JSON error every other refusal is, keeping its
/// `Allow` header.
fn method_not_allowed(resp: &Response) -> Response {
    ApiError::method_not_allowed(
        resp.headers().get(header::ALLOW).cloned(),
        "this path does not take this method (the Allow header lists the ones it takes)",
    )
}

/// The credentials of an `Authorization: Bearer …` value. The scheme name is
/// case-insensitive (RFC 9110, 11.1), so `bearer` and `BEARER` work as well.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let mono = state.clock.mono_ms();
        state
            .auth_limiter
            .check(ip, mono)
            .map_err(ApiError::rate_limited)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .and_then(ApiToken::parse);
        let Some(token) = token else {
            state.auth_limiter.penalize(ip, mono);
            return Err(ApiError::unauthenticated());
        };
        let now = state.clock.now();
        let client = ip.to_string();
        let c = client.clone();
        let principal = state
            .vault(move |v| v.authenticate(&token, &c, now))
            .await?;
        match principal {
            Ok(principal) => Ok(Caller(Ctx {
                principal,
                client,
                now,
            })),
            Err(e) => {
                state.auth_limiter.penalize(ip, mono);
                Err(e.into())
            }
        }
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Request id, in-flight limit, one log line per request, metrics, security headers.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    if !state.proxies.is_empty()
        && let Some(peer) = req.extensions().get::<ClientAddr>().map(|c| c.0)
    {
        // Everything after this (limits, audit, the log line) sees the client, not the proxy.
        let ip = state.proxies.client(peer.ip(), req.headers());
        req.extensions_mut()
            .insert(ClientAddr(SocketAddr::new(ip, peer.port())));
    }
    // Unique per process run and unguessable enough to correlate logs: a random prefix per
    // process plus a counter.
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b)
    });
    let id = format!(
        "{prefix:08x}{:08x}",
        REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // The route template, never the raw path or query (a query could hold anything).
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("(unmatched)", |m| m.as_str());
    let method = req.method().clone();
    let ip = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());

    let span = tracing::info_span!("request", id = %id);
    // Held until the response body has been sent, not just until its head is ready: a
    // streamed download is in flight for as long as it streams (and holds a blocking thread).
    // The health check takes none: a busy server is alive, and must not look dead to whatever
    // restarts it. Over the limit, the refusal still gets the request id, headers, log line
    // and metrics below.
    let permit = if route == "/healthz" {
        Ok(None)
    } else {
        state.in_flight.clone().try_acquire_owned().map(Some)
    };
    let (mut resp, permit) = match permit {
        Ok(permit) => {
            use tracing::Instrument;
            (next.run(req).instrument(span.clone()).await, permit)
        }
        Err(_) => (
            ApiError::unavailable("the server is busy; retry shortly").into_response(),
            None,
        ),
    };
    if resp.extensions().get::<ErrorCode>().is_none() {
        match resp.status().as_u16() {
            400 | 422 => resp = as_json_error(resp).await,
            405 => resp = method_not_allowed(&resp),
            _ => {}
        }
    }
    let status = resp.status();
    state.metrics.request(route, status.as_u16());
    if let Some(code) = resp.extensions().get::<ErrorCode>() {
        state.metrics.refusal(code.0);
    }
    span.in_scope(|| {
        tracing::info!(
            %method,
            route = %route,
            status = status.as_u16(),
            client = %ip.map_or(String::new(), |ip| ip.to_string()),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
    });
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp.map(|body| {
        Body::new(Holding {
            body,
            _permit: permit,
        })
    })
}

/// Link routes: rate limited per address, and never with a query string (a secret pasted
/// into a URL would reach proxies and logs; refusing it teaches clients not to).
async fn link_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().query().is_some() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "secret_in_url",
            "link routes take no query string: the link secret goes in the \
             Kinko-Link-Secret header or a form body, never in a URL",
        )
        .into_response();
    }
    let ip = req
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if let Err(wait) = state.link_limiter.take(ip, state.clock.mono_ms()) {
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(req).await
}

/// A route: its path template and its handlers by method.
type RouteTable = Vec<(&'static str, MethodRouter<AppState>)>;

/// The public endpoints: health, metrics, the API description, the page's assets.
fn public_routes() -> RouteTable {
    vec![
        ("/healthz", get(page::healthz)),
        ("/metrics", get(page::metrics)),
        ("/openapi.json", get(page::openapi)),
        ("/assets/partner.js", get(page::partner_js)),
        ("/assets/partner.css", get(page::partner_css)),
    ]
}

/// The partner routes, behind [`link_guard`].
fn link_routes() -> RouteTable {
    vec![
        ("/s/{share}", get(page::partner_page)),
        ("/s/{share}/download", post(links::form_download)),
        ("/api/v1/links/{share}", post(links::info)),
        ("/api/v1/links/{share}/ticket", post(links::ticket)),
        ("/api/v1/links/{share}/content", get(links::content)),
    ]
}

/// The employee and admin routes (bearer token).
fn api_routes() -> RouteTable {
    vec![
        ("/api/v1/me", get(files::me)),
        ("/api/v1/files", post(files::upload).get(files::list)),
        (
            "/api/v1/files/{file}",
            get(files::info).delete(files::delete),
        ),
        ("/api/v1/files/{file}/content", get(files::content)),
        (
            "/api/v1/files/{file}/shares",
            post(files::create_share).get(files::file_shares),
        ),
        ("/api/v1/files/{file}/revoke", post(files::revoke_file)),
        ("/api/v1/shares", get(files::my_shares)),
        ("/api/v1/shares/{share}", delete(files::revoke_share)),
        ("/api/v1/tokens/{token}", delete(files::revoke_token)),
        (
            "/api/v1/admin/users",
            get(admin::users).post(admin::create_user),
        ),
        (
            "/api/v1/admin/users/{user}/tokens",
            get(admin::tokens).post(admin::issue_token),
        ),
        ("/api/v1/admin/users/{user}/disable", post(admin::disable)),
        ("/api/v1/admin/users/{user}/enable", post(admin::enable)),
        (
            "/api/v1/admin/freeze",
            get(admin::frozen)
                .post(admin::freeze)
                .delete(admin::unfreeze),
        ),
        ("/api/v1/admin/sweep", post(admin::sweep)),
        ("/api/v1/admin/kek/rotate", post(admin::rotate_kek)),
        (
            "/api/v1/admin/retention",
            get(admin::retention).put(admin::set_retention),
        ),
        ("/api/v1/admin/audit/verify", get(admin::audit_verify)),
        ("/api/v1/admin/audit/export", get(admin::audit_export)),
        ("/api/v1/admin/audit/key", get(admin::audit_key)),
        ("/api/v1/admin/clock", post(admin::clock)),
    ]
}

fn build(routes: RouteTable) -> Router<AppState> {
    routes
        .into_iter()
        .fold(Router::new(), |r, (path, methods)| r.route(path, methods))
}

/// The whole application. Its routes are exactly those of the tables above (the OpenAPI test
/// checks docs/openapi.json against them).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(build(public_routes()))
        .merge(
            build(link_routes())
                .route_layer(middleware::from_fn_with_state(state.clone(), link_guard)),
        )
        .merge(build(api_routes()))
        .fallback(|| async { ApiError::not_found("route") })
        // JSON and form bodies; uploads stream their `Body` under `max_upload` instead.
        .layer(DefaultBodyLimit::max(state.limits.max_json_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A response body that keeps its request's in-flight permit until it is done (or dropped).
struct Holding {
    body: Body,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Method;
    use kinko_core::vault::{KeyRing, MasterKey, ShareId, VaultConfig};
    use tower::ServiceExt;

    use super::*;

    /// The methods an OpenAPI path item can hold. HEAD is answered wherever GET is and is not
    /// listed separately, so it is not probed either.
    const METHODS: [Method; 7] = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
    ];

    fn state(dir: &std::path::Path) -> AppState {
        let keys = KeyRing::new(MasterKey::generate());
        let (vault, _) = Vault::open(dir, VaultConfig::new(keys), Timestamp::now()).unwrap();
        let limits = Limits {
            link_per_minute: 0,
            auth_failures_per_minute: 0,
            ..Limits::default()
        };
        let vault = Arc::new(vault);
        let metrics = Arc::new(Metrics::default());
        AppState {
            inner: Arc::new(Shared {
                workers: VaultWorkers::start(&vault, 1).unwrap(),
                group_commit: GroupCommit::start(&vault, &metrics).unwrap(),
                vault,
                clock: Clock::new(true),
                metrics,
                link_limiter: RateLimiter::new(0),
                auth_limiter: RateLimiter::new(0),
                in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
                uploads: Semaphore::new(limits.max_uploads),
                argon2: Semaphore::new(2),
                proxies: TrustedProxies::default(),
                metrics_from: Networks::default(),
                limits,
                public_url: "http://127.0.0.1:1".into(),
            }),
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer kinko_x",
            "bearer kinko_x",
            "BEARER  kinko_x",
            " Bearer kinko_x",
        ] {
            assert_eq!(bearer(v), Some("kinko_x"), "{v:?}");
        }
        for v in ["Basic kinko_x", "Bearerkinko_x", "kinko_x", ""] {
            assert_eq!(bearer(v), None, "{v:?}");
        }
    }

    /// A server state whose admin shares one file holding `content` with `opts`: the state,
    /// the share, its link secret, and the admin's context.
    pub(crate) fn shared_file(
        dir: &std::path::Path,
        content: &[u8],
        opts: kinko_core::vault::ShareOptions,
    ) -> (AppState, ShareId, String, Ctx) {
        use kinko_core::vault::Metadata;
        use secrecy::ExposeSecret;

        let st = state(dir);
        let now = Timestamp::now();
        let (_, token) = st.vault.bootstrap_admin("admin", 3600, now).unwrap();
        let ctx = Ctx {
            principal: st.vault.authenticate(&token, "", now).unwrap(),
            client: String::new(),
            now,
        };
        let file = st
            .vault
            .upload(&ctx, &Metadata::default(), None, &mut &content[..])
            .unwrap();
        let share = st.vault.create_share(&ctx, &file, opts).unwrap();
        let secret = share.secret.expose_secret().expose_secret().to_owned();
        (st, share.id, secret, ctx)
    }

    /// A vault with a file shared under the password "open sesame": the state, the share's
    /// id and secret, and the admin's context.
    fn password_share(dir: &std::path::Path) -> (AppState, ShareId, String, Ctx) {
        let opts = kinko_core::vault::ShareOptions {
            expires_in: 3600,
            password: Some("open sesame".to_owned().into()),
            ..Default::default()
        };
        shared_file(dir, b"guarded", opts)
    }

    /// A link download with the password "open sesame".
    fn download_with_password(share: &ShareId, secret: &str) -> axum::http::Request<Body> {
        axum::http::Request::builder()
            .uri(format!("/api/v1/links/{share}/content"))
            .header("kinko-link-secret", secret)
            .header("kinko-password", "open%20sesame")
            .body(Body::empty())
            .unwrap()
    }

    /// Password checks (Argon2) wait for a permit: with every permit taken, a download with a
    /// password does not start, and it runs as soon as one is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_checks_wait_for_an_argon2_permit() {
        let dir = tempfile::tempdir().unwrap();
        let (st, share, secret, _) = password_share(dir.path());
        let held = st.argon2.acquire_many(2).await.unwrap();
        let req = download_with_password(&share, &secret);
        let download = tokio::spawn(router(st.clone()).oneshot(req));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!download.is_finished(), "it ran without a permit");
        drop(held);
        let resp = download.await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// A password that cannot change the answer (a wrong secret, a revoked share) is not
    /// checked, so its request is answered while every Argon2 permit is taken, not queued
    /// behind real checks. (A bound, not a timing: without it these wait forever.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_password_that_cannot_matter_waits_for_no_permit() {
        let dir = tempfile::tempdir().unwrap();
        let (st, share, secret, ctx) = password_share(dir.path());
        let _held = st.argon2.acquire_many(2).await.unwrap();
        let answer = |req: axum::http::Request<Body>| {
            let app = router(st.clone());
            async move {
                let resp = tokio::time::timeout(Duration::from_secs(60), app.oneshot(req))
                    .await
                    .expect("answered without an Argon2 permit");
                resp.unwrap().status()
            }
        };
        let other = kinko_core::vault::LinkSecret::generate();
        let other = secrecy::ExposeSecret::expose_secret(&other.expose_secret()).to_owned();
        let wrong_secret = answer(download_with_password(&share, &other)).await;
        assert_eq!(wrong_secret, StatusCode::NOT_FOUND);
        st.vault.revoke_share(&ctx, &share).unwrap();
        let revoked = answer(download_with_password(&share, &secret)).await;
        assert_eq!(revoked, StatusCode::NOT_FOUND);
    }

    /// A link download whose client goes away while its decision waits in the workers' queue
    /// is not decided: the share's one download is not spent, no audit record says it was
    /// downloaded, and the partner's next try gets the file. The one worker is held by another
    /// job, so the download is still queued when its request is dropped: no timing involved.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_download_dropped_before_its_decision_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = kinko_core::vault::ShareOptions {
            expires_in: 3600,
            max_downloads: Some(1),
            ..Default::default()
        };
        let (st, share, secret, ctx) = shared_file(dir.path(), b"once", opts);
        let download = || {
            axum::http::Request::builder()
                .uri(format!("/api/v1/links/{share}/content"))
                .header("kinko-link-secret", &secret)
                .body(Body::empty())
                .unwrap()
        };

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let st = st.clone();
            tokio::spawn(async move {
                st.workers
                    .run(move |_: &Vault| {
                        let _ = started_tx.send(());
                        let _ = release_rx.recv();
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let request = tokio::spawn(router(st.clone()).oneshot(download()));
        while st.workers.queued() == 0 {
            tokio::task::yield_now().await;
        }
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        // One worker takes jobs in order: once this one has run, the download's has too.
        st.workers.run(|_: &Vault| ()).await.unwrap();

        let shares = st.vault.my_shares(&ctx).unwrap();
        assert_eq!(shares[0].downloads, 0, "the dropped download was counted");
        let mut audit = Vec::new();
        st.vault.export_audit(&ctx, &mut audit).unwrap();
        let audit = String::from_utf8(audit).unwrap();
        assert!(!audit.contains("share.download"), "{audit}");
        let resp = router(st.clone()).oneshot(download()).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the partner's download was spent"
        );
    }

    async fn call(app: &Router, method: Method, path: &str) -> Response {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    /// The `code` of an error answer's JSON body.
    async fn error_code(resp: Response) -> String {
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
        body["error"]["code"]
            .as_str()
            .expect("an error code")
            .to_owned()
    }

    /// docs/openapi.json is what `/openapi.json` serves, parses as OpenAPI 3.1, and documents
    /// exactly the (method, path) pairs the router serves: the paths are the route tables the
    /// router is built from, the methods are asked of the router itself (405 = not served,
    /// answered as the document's `MethodNotAllowed`: code `method_not_allowed`, with `Allow`).
    #[tokio::test]
    async fn openapi_documents_exactly_the_served_routes() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(state(dir.path()));

        let resp = call(&app, Method::GET, "/openapi.json").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let names: Vec<String> = METHODS.iter().map(|m| m.as_str().to_lowercase()).collect();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("path item");
                item.keys()
                    .filter(|k| names.contains(k))
                    .map(|k| (k.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();

        let mut served = BTreeSet::new();
        for (path, _) in public_routes()
            .into_iter()
            .chain(link_routes())
            .chain(api_routes())
        {
            let uri = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "0".repeat(32)
                    } else {
                        seg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            for m in &METHODS {
                let resp = call(&app, m.clone(), &uri).await;
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                    // What the document's `MethodNotAllowed` response says of every path.
                    assert!(resp.headers().contains_key(header::ALLOW), "{m} {path}");
                    assert_eq!(error_code(resp).await, "method_not_allowed", "{m} {path}");
                } else {
                    served.insert((m.as_str().to_owned(), path.to_owned()));
                }
            }
        }
        assert!(served.len() > 30, "probing found only {served:?}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let not_served: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && not_served.is_empty(),
            "served but not in docs/openapi.json: {undocumented:?}; \
             documented but not served: {not_served:?}"
        );
    }

    /// Every error response in docs/openapi.json resolves, and lists each code it names (the
    /// backquoted codes of its description) under the status the server answers that code
    /// with: the statuses are taken from the server's own error mapping, not restated here.
    /// A `HEAD` of a link's content, which the router would answer as a `GET`, is refused with
    /// `405 method_not_allowed`, and the document says so.
    #[tokio::test]
    async fn openapi_lists_each_error_code_under_its_status() {
        use kinko_core::vault::{AccessError, StoreError, VaultError};

        use super::super::files::ranged_response;
        use super::super::stream::RangeReq;

        let dir = tempfile::tempdir().unwrap();
        let app = router(state(dir.path()));
        let body = call(&app, Method::GET, "/openapi.json").await.into_body();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();

        let mut answers: Vec<(StatusCode, String)> = [
            ApiError::invalid(""),
            ApiError::unauthenticated(),
            ApiError::not_found("file"),
            ApiError::link_invalid(),
            ApiError::rate_limited(1),
            ApiError::too_large(1),
            ApiError::timeout(),
            ApiError::internal(),
            ApiError::unavailable(""),
            VaultError::Forbidden.into(),
            VaultError::Exists("user").into(),
            VaultError::Store(StoreError::Conflict).into(),
            AccessError::PasswordRequired.into(),
            AccessError::WrongPassword.into(),
            AccessError::NotRecipient.into(),
        ]
        .into_iter()
        .map(|e| (e.status, e.code.to_owned()))
        .collect();
        let share = format!("/api/v1/links/{}", "0".repeat(32));
        let link_content = format!("{share}/content");
        let refused = [
            call(&app, Method::PATCH, "/healthz").await,
            call(&app, Method::POST, &format!("{share}?x")).await,
            ranged_response(
                RangeReq::Unsatisfiable,
                0,
                HeaderValue::from_static("text/plain"),
                "f",
                &[],
                |_| Body::empty(),
            ),
        ];
        for resp in refused {
            answers.push((resp.status(), error_code(resp).await));
        }
        let status_of: std::collections::BTreeMap<String, StatusCode> =
            answers.into_iter().map(|(s, c)| (c, s)).collect();

        let known: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for code in status_of.keys() {
            assert!(
                known.contains(code.as_str()),
                "{code} is not in the Error schema"
            );
        }
        let resolve = |r: &serde_json::Value| -> serde_json::Value {
            match r["$ref"].as_str() {
                Some(to) => {
                    let name = to
                        .strip_prefix("#/components/responses/")
                        .unwrap_or_else(|| panic!("not a response: {to}"));
                    let target = &doc["components"]["responses"][name];
                    assert!(target.is_object(), "{to} does not resolve");
                    target.clone()
                }
                None => r.clone(),
            }
        };
        let mut unchecked = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op["responses"].as_object() else {
                    continue;
                };
                for (status, r) in responses {
                    let status: u16 = status.parse().unwrap();
                    let description = resolve(r)["description"].as_str().unwrap().to_owned();
                    let codes = description
                        .split('`')
                        .skip(1)
                        .step_by(2)
                        .filter(|w| known.contains(w));
                    for code in codes {
                        match status_of.get(code) {
                            Some(real) => assert_eq!(
                                real.as_u16(),
                                status,
                                "{method} {path} lists {code} under {status}"
                            ),
                            None => {
                                unchecked.insert(code.to_owned());
                            }
                        }
                    }
                }
            }
        }
        // Answered only by an audit log that fails to verify.
        assert_eq!(unchecked, BTreeSet::from(["audit_broken".to_owned()]));

        let head = call(&app, Method::HEAD, &link_content).await;
        assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(head.headers()[header::ALLOW], "GET");
        let listed = &doc["paths"]["/api/v1/links/{share}/content"]["get"]["responses"]["405"];
        assert_eq!(
            listed["$ref"], "#/components/responses/MethodNotAllowed",
            "the HEAD refusal is not documented"
        );
    }
}
