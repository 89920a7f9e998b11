//! The client commands (`webhooks`, `events`, `deliveries`, `schedules`, `inbound`, `tail`):
//! calls to a running server's REST API (SPEC §4), printing each answer as a table (see
//! [`super::table`]) or, with `--json`, as the server's JSON.

use std::collections::HashMap;
use std::io::Read as _;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::table::{self, View};
use crate::cli::{
    ClientArgs, DataArg, DeliveriesCommand, EventsCommand, InboundCommand, PageArgs, PublishArgs,
    SchedulesCommand, WebhooksCommand,
};

/// The columns of each list.
const WEBHOOK_COLUMNS: &[&str] = &["id", "name", "active", "url", "events", "circuit"];
const EVENT_COLUMNS: &[&str] = &["id", "type", "model", "created_at"];
const DELIVERY_COLUMNS: &[&str] = &[
    "id",
    "status",
    "webhook_id",
    "event_id",
    "attempt_count",
    "last_status_code",
    "updated_at",
    "last_error",
];
/// The dashboard's numbers: one row per bucket.
const DELIVERY_STATS: View = View::Record(&[(
    "buckets",
    &[
        "start",
        "attempts",
        "succeeded",
        "failed",
        "latency_p50_ms",
        "latency_p95_ms",
    ],
)]);
/// A delivery with its attempts.
const DELIVERY_RECORD: View = View::Record(&[(
    "attempts",
    &[
        "attempt",
        "started_at",
        "duration_ms",
        "response.status",
        "error_kind",
        "error",
    ],
)]);
const SCHEDULE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "active",
    "webhook_id",
    "cron",
    "every_seconds",
    "next_run_at",
];
const INBOUND_COLUMNS: &[&str] = &["id", "name", "active", "url"];
const EXECUTION_COLUMNS: &[&str] = &[
    "id",
    "status",
    "attempts",
    "duration_ms",
    "error",
    "created_at",
];
const STATS_COLUMNS: &[&str] = &[
    "webhook_id",
    "last_status",
    "last_at",
    "succeeded",
    "failed",
    "pending",
    "success_rate",
];
const PUBLISHED_COLUMNS: &[&str] = &["id", "deliveries", "duplicate"];

/// Longest wait for one answer unless `--timeout` says otherwise: a server that stalls is named
/// after this, not waited on for ever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `webhooks test`'s: it waits for the target, up to the webhook's own timeout.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// Longest wait for the connection itself.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `tail` asks for the latest deliveries.
const TAIL_INTERVAL: Duration = Duration::from_secs(1);
/// How many of the latest deliveries `tail` watches.
const TAIL_PAGE: &str = "50";

/// An authenticated client of one server's `/api/v1`.
struct ApiClient {
    http: reqwest::Client,
    /// `--json`: print answers as the server's JSON.
    json: bool,
    /// The server's base URL, as given by `--server`.
    base: Url,
    token: String,
    /// Longest wait for one answer.
    timeout: Duration,
    /// Whether `--timeout` set it (a command that waits longer leaves it then).
    timeout_given: bool,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Query parameters; those set to `None` are left out.
type Query<'a> = [(&'a str, Option<&'a str>)];

impl ApiClient {
    fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = Url::parse(&args.server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| anyhow!("--server: `{}` is not an http(s) URL", args.server))?;
        let token = args.token.clone().context(
            "no admin token: pass --token or set HOOKD_TOKEN (`hookd token create` makes one)",
        )?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("hookd-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            json: args.json,
            base,
            token,
            timeout: args.timeout.map_or(REQUEST_TIMEOUT, Duration::from_secs),
            timeout_given: args.timeout.is_some(),
        })
    }

    /// The client for a call that waits on something else (`webhooks test`): `wait` unless
    /// `--timeout` was given.
    fn waiting(mut self, wait: Duration) -> Self {
        if !self.timeout_given {
            self.timeout = wait;
        }
        self
    }

    /// `/api/v1/<path...>` on the server, each path segment escaped.
    fn url(&self, path: &[&str], query: &Query<'_>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["api", "v1"]).extend(path);
        }
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| Some((*k, (*v)?)))
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// Calls the API; `None` for an empty answer. A non-2xx answer is an error with the
    /// server's message.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &Query<'_>,
        body: Option<&Value>,
    ) -> anyhow::Result<Option<Value>> {
        let url = self.url(path, query);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.timeout)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body)?);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.failed(e, &method, &url))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.failed(e, &method, &url))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .context("the server answered with invalid JSON")
    }

    /// A failed call, saying so when it was the timeout.
    fn failed(&self, e: reqwest::Error, method: &Method, url: &Url) -> anyhow::Error {
        let what = if e.is_timeout() {
            format!(
                "{method} {url}: no answer within {} s (--timeout SECONDS to wait longer)",
                self.timeout.as_secs()
            )
        } else {
            format!("{method} {url} failed")
        };
        anyhow::Error::new(e).context(what)
    }

    async fn get(&self, path: &[&str], query: &Query<'_>) -> anyhow::Result<Option<Value>> {
        self.call(Method::GET, path, query, None).await
    }

    async fn post(&self, path: &[&str], body: Option<&Value>) -> anyhow::Result<Option<Value>> {
        self.call(Method::POST, path, &[], body).await
    }

    /// A page of the list at `path`, with the filters of `query` beside the page's.
    async fn list(
        &self,
        path: &[&str],
        page: &PageArgs,
        query: &Query<'_>,
    ) -> anyhow::Result<Option<Value>> {
        let limit = page.limit.map(|n| n.to_string());
        let mut all = vec![
            ("limit", limit.as_deref()),
            ("cursor", page.cursor.as_deref()),
        ];
        all.extend_from_slice(query);
        self.get(path, &all).await
    }

    /// `PATCH` of the fields in `body`.
    async fn patch(&self, path: &[&str], body: &Value) -> anyhow::Result<Option<Value>> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    /// `POST` of a `--data` body: a create.
    async fn create(&self, path: &[&str], data: &DataArg) -> anyhow::Result<Option<Value>> {
        self.post(path, Some(&read_data(&data.data)?)).await
    }

    /// `PATCH` of a `--data` body: an update of the fields it gives.
    async fn update(&self, path: &[&str], data: &DataArg) -> anyhow::Result<Option<Value>> {
        self.patch(path, &read_data(&data.data)?).await
    }

    /// `PATCH {"active": …}`: how schedules and inbound hooks are turned on and off.
    async fn set_active(&self, path: &[&str], active: bool) -> anyhow::Result<Option<Value>> {
        self.patch(path, &json!({ "active": active })).await
    }

    /// `DELETE`, answered by `{"deleted": id}` when the server answers nothing.
    async fn delete(&self, path: &[&str], id: &str) -> anyhow::Result<Option<Value>> {
        let answer = self.call(Method::DELETE, path, &[], None).await?;
        Ok(answer.or_else(|| Some(json!({ "deleted": id }))))
    }

    /// Prints `answer`: its JSON with `--json`, else as `view`.
    fn show(&self, answer: Option<Value>, view: View) -> anyhow::Result<()> {
        let Some(answer) = answer else {
            return Ok(());
        };
        let text = if self.json {
            serde_json::to_string_pretty(&answer)? + "\n"
        } else {
            table::render(&answer, view)
        };
        super::out(text.as_bytes())
    }
}

/// The error of a non-2xx answer, with the message of the server's `{"error": {…}}` body.
fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    #[derive(Deserialize)]
    struct Envelope {
        error: ApiError,
    }
    #[derive(Deserialize)]
    struct ApiError {
        code: String,
        message: String,
        field: Option<String>,
    }
    let hint = match status {
        StatusCode::UNAUTHORIZED => "; check --token or HOOKD_TOKEN",
        _ => "",
    };
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => {
            let field = error
                .field
                .map(|f| format!(", field `{f}`"))
                .unwrap_or_default();
            anyhow!("{} ({status}, {}{field}{hint})", error.message, error.code)
        }
        Err(_) => {
            let text: String = String::from_utf8_lossy(body).chars().take(500).collect();
            anyhow!("the server answered {status}: {}{hint}", text.trim())
        }
    }
}

/// The JSON of a `--data` argument: inline text, `@FILE`, or `@-` for standard input.
fn read_data(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("--data @-: reading standard input")?;
            text
        }
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("--data: reading {path}"))?
        }
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("--data: not valid JSON")
}

/// `hookd webhooks …`.
pub async fn webhooks(args: &ClientArgs, command: WebhooksCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let api = match command {
        WebhooksCommand::Test { .. } => api.waiting(TEST_TIMEOUT),
        _ => api,
    };
    let (answer, view) = match command {
        WebhooksCommand::List(page) => (
            api.list(&["webhooks"], &page, &[]).await?,
            View::Table(WEBHOOK_COLUMNS),
        ),
        WebhooksCommand::Get { id } => (api.get(&["webhooks", &id], &[]).await?, View::Fields),
        WebhooksCommand::Create(data) => (api.create(&["webhooks"], &data).await?, View::Fields),
        WebhooksCommand::Update { id, data } => {
            (api.update(&["webhooks", &id], &data).await?, View::Fields)
        }
        WebhooksCommand::Delete { id } => {
            (api.delete(&["webhooks", &id], &id).await?, View::Fields)
        }
        WebhooksCommand::Enable { id } => (
            api.post(&["webhooks", &id, "enable"], None).await?,
            View::Fields,
        ),
        WebhooksCommand::Disable { id } => (
            api.post(&["webhooks", &id, "disable"], None).await?,
            View::Fields,
        ),
        WebhooksCommand::Test { id, data } => {
            let body = optional_data(data.data.as_deref())?;
            (
                api.post(&["webhooks", &id, "test"], body.as_ref()).await?,
                View::Fields,
            )
        }
        WebhooksCommand::Preview { id, data } => {
            let body = optional_data(data.data.as_deref())?;
            let answer = match &id {
                Some(id) => {
                    api.post(&["webhooks", id, "preview"], body.as_ref())
                        .await?
                }
                None => api.post(&["webhooks", "preview"], body.as_ref()).await?,
            };
            (answer, View::Fields)
        }
        WebhooksCommand::Secret { id } => (
            api.get(&["webhooks", &id, "secret"], &[]).await?,
            View::Fields,
        ),
        WebhooksCommand::RotateSecret { id } => (
            api.post(&["webhooks", &id, "rotate-secret"], None).await?,
            View::Fields,
        ),
        WebhooksCommand::Recover { id, since } => {
            let body = json!({ "since": since });
            (
                api.post(&["webhooks", &id, "recover"], Some(&body)).await?,
                View::Fields,
            )
        }
        WebhooksCommand::Stats { ids, since } => {
            let ids = match ids {
                Some(ids) => ids,
                None => first_webhook_ids(&api).await?,
            };
            let query = [("ids", Some(ids.as_str())), ("since", since.as_deref())];
            (
                api.get(&["webhooks", "stats"], &query).await?,
                View::Table(STATS_COLUMNS),
            )
        }
    };
    api.show(answer, view)
}

/// The ids of the first 1000 webhooks (the most `GET /webhooks/stats` takes), comma-separated.
async fn first_webhook_ids(api: &ApiClient) -> anyhow::Result<String> {
    let page = api.get(&["webhooks"], &[("limit", Some("1000"))]).await?;
    let rows = page.as_ref().and_then(|p| p["data"].as_array());
    let ids: Vec<&str> = rows
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_str())
        .collect();
    Ok(ids.join(","))
}

/// The JSON of an optional `--data`.
fn optional_data(arg: Option<&str>) -> anyhow::Result<Option<Value>> {
    arg.map(read_data).transpose()
}

/// `hookd events …`.
pub async fn events(args: &ClientArgs, command: EventsCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let (answer, view) = match command {
        EventsCommand::Publish(publish) => {
            let body = event_body(&publish)?;
            (api.post(&["events"], Some(&body)).await?, View::Fields)
        }
        EventsCommand::Batch(data) => {
            let body = batch_body(read_data(&data.data)?);
            (
                api.post(&["events", "batch"], Some(&body)).await?,
                View::Table(PUBLISHED_COLUMNS),
            )
        }
        EventsCommand::RouteCall(data) => {
            let body = read_data(&data.data)?;
            (api.post(&["route-calls"], Some(&body)).await?, View::Fields)
        }
        EventsCommand::List(page) => (
            api.list(&["events"], &page, &[]).await?,
            View::Table(EVENT_COLUMNS),
        ),
        EventsCommand::Get { id } => (api.get(&["events", &id], &[]).await?, View::Fields),
    };
    api.show(answer, view)
}

/// The body of `POST /events/batch`: a bare array of events is wrapped as `{"events": […]}`.
fn batch_body(data: Value) -> Value {
    match data {
        Value::Array(events) => json!({ "events": events }),
        other => other,
    }
}

/// The body of `POST /api/v1/events`; `data` is `{}` unless given.
fn event_body(publish: &PublishArgs) -> anyhow::Result<Value> {
    let data = publish.data.data.as_deref().map(read_data).transpose()?;
    let mut body = json!({ "type": publish.event_type, "data": data.unwrap_or_else(|| json!({})) });
    if let Some(model) = &publish.model {
        body["model"] = json!(model);
    }
    if let Some(key) = &publish.idempotency_key {
        body["idempotency_key"] = json!(key);
    }
    Ok(body)
}

/// `hookd deliveries …`.
pub async fn deliveries(args: &ClientArgs, command: DeliveriesCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let (answer, view) = match command {
        DeliveriesCommand::List {
            webhook_id,
            event_id,
            status,
            page,
        } => {
            let filters = [
                ("webhook_id", webhook_id.as_deref()),
                ("event_id", event_id.as_deref()),
                ("status", status.map(|s| s.as_str())),
            ];
            (
                api.list(&["deliveries"], &page, &filters).await?,
                View::Table(DELIVERY_COLUMNS),
            )
        }
        DeliveriesCommand::Get { id } => {
            (api.get(&["deliveries", &id], &[]).await?, DELIVERY_RECORD)
        }
        DeliveriesCommand::Stats { window, webhook_id } => {
            let query = [
                ("window", Some(window.as_str())),
                ("webhook_id", webhook_id.as_deref()),
            ];
            (
                api.get(&["stats", "deliveries"], &query).await?,
                DELIVERY_STATS,
            )
        }
        DeliveriesCommand::Retry { id } => (
            api.post(&["deliveries", &id, "retry"], None).await?,
            View::Fields,
        ),
    };
    api.show(answer, view)
}

/// `hookd schedules …`.
pub async fn schedules(args: &ClientArgs, command: SchedulesCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let (answer, view) = match command {
        SchedulesCommand::List(page) => (
            api.list(&["schedules"], &page, &[]).await?,
            View::Table(SCHEDULE_COLUMNS),
        ),
        SchedulesCommand::Get { id } => (api.get(&["schedules", &id], &[]).await?, View::Fields),
        SchedulesCommand::Create(data) => (api.create(&["schedules"], &data).await?, View::Fields),
        SchedulesCommand::Update { id, data } => {
            (api.update(&["schedules", &id], &data).await?, View::Fields)
        }
        SchedulesCommand::Delete { id } => {
            (api.delete(&["schedules", &id], &id).await?, View::Fields)
        }
        SchedulesCommand::Enable { id } => (
            api.set_active(&["schedules", &id], true).await?,
            View::Fields,
        ),
        SchedulesCommand::Disable { id } => (
            api.set_active(&["schedules", &id], false).await?,
            View::Fields,
        ),
        SchedulesCommand::Run { id } => (
            api.post(&["schedules", &id, "run"], None).await?,
            View::Fields,
        ),
        SchedulesCommand::Preview { id, data } => {
            let answer = match (id, optional_data(data.data.as_deref())?) {
                (Some(id), _) => api.post(&["schedules", &id, "preview"], None).await?,
                (None, body) => api.post(&["schedules", "preview"], body.as_ref()).await?,
            };
            (answer, View::Fields)
        }
    };
    api.show(answer, view)
}

/// `hookd inbound …`.
pub async fn inbound(args: &ClientArgs, command: InboundCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let (answer, view) = match command {
        InboundCommand::List(page) => (
            api.list(&["inbound"], &page, &[]).await?,
            View::Table(INBOUND_COLUMNS),
        ),
        InboundCommand::Get { id } => (api.get(&["inbound", &id], &[]).await?, View::Fields),
        InboundCommand::Create(data) => (api.create(&["inbound"], &data).await?, View::Fields),
        InboundCommand::Update { id, data } => {
            (api.update(&["inbound", &id], &data).await?, View::Fields)
        }
        InboundCommand::Delete { id } => (api.delete(&["inbound", &id], &id).await?, View::Fields),
        InboundCommand::Enable { id } => {
            (api.set_active(&["inbound", &id], true).await?, View::Fields)
        }
        InboundCommand::Disable { id } => (
            api.set_active(&["inbound", &id], false).await?,
            View::Fields,
        ),
        InboundCommand::Executions { id, page } => (
            api.list(&["inbound", &id, "executions"], &page, &[])
                .await?,
            View::Table(EXECUTION_COLUMNS),
        ),
        InboundCommand::Execution { id } => {
            (api.get(&["executions", &id], &[]).await?, View::Fields)
        }
        InboundCommand::Parse(data) => {
            let body = read_data(&data.data)?;
            (
                api.post(&["inbound", "parse"], Some(&body)).await?,
                View::Fields,
            )
        }
    };
    api.show(answer, view)
}

/// `hookd tail`: polls the latest deliveries every second and prints each new or changed one,
/// oldest first, until Ctrl-C. While the server cannot be reached it keeps trying.
pub async fn tail(args: &ClientArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(args)?;
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut unreachable = false;
    let mut ticks = tokio::time::interval(TAIL_INTERVAL);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = ticks.tick() => {}
        }
        let page = match api
            .get(&["deliveries"], &[("limit", Some(TAIL_PAGE))])
            .await
        {
            Ok(page) => page,
            Err(e) if e.downcast_ref::<reqwest::Error>().is_some() => {
                if !std::mem::replace(&mut unreachable, true) {
                    eprintln!("waiting for the server: {e:#}");
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        unreachable = false;
        for (line, row) in changes(page.as_ref(), &mut seen) {
            let text = if api.json { row.to_string() } else { line };
            super::out(format!("{text}\n").as_bytes())?;
        }
    }
}

/// Lines (with their JSON) for the deliveries of `page` that are new or changed since `seen`,
/// oldest first; `seen` becomes this page's deliveries.
fn changes<'p>(
    page: Option<&'p Value>,
    seen: &mut HashMap<String, String>,
) -> Vec<(String, &'p Value)> {
    let rows = page
        .and_then(|p| p["data"].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut current = HashMap::with_capacity(rows.len());
    let mut lines = Vec::new();
    for row in rows.iter().rev() {
        let id = text(&row["id"]);
        let state = format!(
            "{:<10} {} {} attempts={} last_status={}",
            text(&row["status"]),
            text(&row["webhook_id"]),
            text(&row["event_id"]),
            text(&row["attempt_count"]),
            text(&row["last_status_code"]),
        );
        if seen.get(&id) != Some(&state) {
            lines.push((format!("{} {id} {state}", time(&row["updated_at"])), row));
        }
        current.insert(id, state);
    }
    *seen = current;
    lines
}

/// A JSON value as plain text: strings unquoted, `-` for null or missing.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp given as RFC 3339 text or as Unix milliseconds, as RFC 3339 text.
fn time(value: &Value) -> String {
    let millis = value
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis);
    match millis {
        Some(at) => at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => text(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> ApiClient {
        let args = ClientArgs {
            server: server.into(),
            token: Some("t".into()),
            json: false,
            timeout: None,
        };
        ApiClient::new(&args).unwrap()
    }

    #[test]
    fn urls_are_built_under_api_v1_with_escaped_segments() {
        let api = client("http://127.0.0.1:8080");
        let url = api.url(&["webhooks", "wh_1", "enable"], &[]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/api/v1/webhooks/wh_1/enable"
        );
        let url = client("https://h/base/").url(
            &["deliveries", "a/b"],
            &[("status", Some("failed")), ("limit", None)],
        );
        assert_eq!(
            url.as_str(),
            "https://h/base/api/v1/deliveries/a%2Fb?status=failed"
        );
    }

    #[test]
    fn the_client_needs_an_http_server_url_and_a_token() {
        let no_token = ClientArgs {
            server: "http://h".into(),
            token: None,
            json: false,
            timeout: None,
        };
        assert!(format!("{:#}", ApiClient::new(&no_token).unwrap_err()).contains("HOOKD_TOKEN"));
        let bad = ClientArgs {
            server: "h:8080".into(),
            token: Some("t".into()),
            json: false,
            timeout: None,
        };
        assert!(format!("{:#}", ApiClient::new(&bad).unwrap_err()).contains("--server"));
    }

    #[test]
    fn api_errors_show_the_server_message() {
        let body = br#"{"error": {"code": "invalid_field", "message": "must be an http(s) URL",
                        "field": "url"}}"#;
        let message = api_error(StatusCode::UNPROCESSABLE_ENTITY, body).to_string();
        assert_eq!(
            message,
            "must be an http(s) URL (422 Unprocessable Entity, invalid_field, field `url`)"
        );
        let message = api_error(StatusCode::BAD_GATEWAY, b"upstream down").to_string();
        assert_eq!(
            message,
            "the server answered 502 Bad Gateway: upstream down"
        );
    }

    #[test]
    fn events_are_published_with_optional_fields() {
        let publish = PublishArgs {
            event_type: "entry.create".into(),
            model: Some("address".into()),
            data: crate::cli::OptionalDataArg {
                data: Some(r#"{"id": 1}"#.into()),
            },
            idempotency_key: None,
        };
        let body = event_body(&publish).unwrap();
        assert_eq!(
            body,
            json!({"type": "entry.create", "model": "address", "data": {"id": 1}})
        );
        assert!(read_data("{not json").is_err());
    }

    #[test]
    fn tail_prints_new_and_changed_deliveries_oldest_first() {
        let page = |rows: Value| json!({ "data": rows, "next_cursor": null });
        let row = |id: &str, status: &str, attempts: u32| {
            json!({"id": id, "status": status, "webhook_id": "wh_1", "event_id": "evt_1",
                   "attempt_count": attempts, "last_status_code": null, "updated_at": 0})
        };
        let mut seen = HashMap::new();
        let first = page(json!([
            row("dlv_2", "pending", 0),
            row("dlv_1", "succeeded", 1)
        ]));
        let lines = changes(Some(&first), &mut seen);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0]
                .0
                .starts_with("1970-01-01T00:00:00.000Z dlv_1 succeeded"),
            "{lines:?}"
        );
        assert!(changes(Some(&first), &mut seen).is_empty());
        let second = page(json!([
            row("dlv_2", "retrying", 1),
            row("dlv_1", "succeeded", 1)
        ]));
        let lines = changes(Some(&second), &mut seen);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].0.contains("dlv_2 retrying")
                && lines[0].0.ends_with("attempts=1 last_status=-")
        );
    }
}
