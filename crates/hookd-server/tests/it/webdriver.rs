//! A tiny W3C WebDriver client over `reqwest`, driving Debian's headless Chromium through
//! `chromedriver` (started here on a free port, killed on drop). Just what the UI tests use:
//! navigate, find (polling with a deadline), click, type, read, run a script, screenshot.
//!
//! `chromedriver` is taken from `HOOKD_TEST_CHROMEDRIVER`, else from `PATH`. When there is none,
//! [`Browser::start`] returns `None` and the tests skip, unless `HOOKD_TEST_BROWSER=required`.
//!
//! Kept by hand on purpose: fantoccini 0.22 (thirtyfour builds on it) would add about 31 crates
//! to the test build (ICU segmentation and its data, a second `http`, `time`, two cookie
//! crates, duplicate `yoke`/`zerovec`/`thiserror`) on machines where every crate costs build
//! minutes, for the eight WebDriver commands these tests send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// How long to wait for an element or a condition before failing the test (generous: the
/// browser shares the machine with the rest of the test suite).
const DEADLINE: Duration = Duration::from_secs(30);
/// The key W3C WebDriver puts element references under.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Where screenshots go: `ui-shots` in the system temp directory (not committed; looked at
/// while building the UI).
fn shots_dir() -> PathBuf {
    std::env::temp_dir().join("ui-shots")
}

/// Browsers running at once: each is a few processes, and the machine may have two cores.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

/// The two widths every page is looked at: a laptop and a phone.
pub const WIDE: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// A running chromedriver with one browser session.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    port: u16,
    session_id: String,
    child: Child,
    /// Chromium's profile directory, removed when the browser is gone.
    profile: PathBuf,
    /// Released when the browser is gone (after `child` is killed, as fields drop in order).
    _slot: tokio::sync::SemaphorePermit<'static>,
}

/// An element reference, with how it was found (to find it again if the page re-rendered it).
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
    locator: Option<Locator>,
}

/// A script that returns the element (or null until it is there), with its arguments.
#[derive(Debug, Clone)]
struct Locator {
    what: String,
    script: &'static str,
    args: Vec<Value>,
}

fn chromedriver_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HOOKD_TEST_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (with a message) when no
    /// chromedriver is installed and the browser is not required.
    pub async fn start() -> Option<Browser> {
        let Some(driver) = chromedriver_path() else {
            let required = std::env::var("HOOKD_TEST_BROWSER").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "HOOKD_TEST_BROWSER=required but no chromedriver: install chromium and \
                 chromium-driver, or set HOOKD_TEST_CHROMEDRIVER"
            );
            eprintln!(
                "UI test skipped: no chromedriver on PATH and HOOKD_TEST_CHROMEDRIVER unset \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let slot = BROWSERS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let port = free_port();
        // A profile and temp directory of its own (Chromium puts its singleton socket under
        // TMPDIR), removed on drop, so the test leaves nothing behind.
        let profile = std::env::temp_dir().join(format!("hookd-ui-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .env("TMPDIR", &profile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < DEADLINE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            format!("--window-size={},{}", WIDE.0, WIDE.1),
            format!("--user-data-dir={}", profile.display()),
        ]});
        if let Some(bin) = std::env::var_os("HOOKD_TEST_CHROMIUM") {
            options["binary"] = json!(bin.to_string_lossy());
        } else if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let session_id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_owned();
        Some(Browser {
            http,
            session: format!("{base}/session/{session_id}"),
            port,
            session_id,
            child,
            profile,
            _slot: slot,
        })
    }

    /// One WebDriver command; `Err` carries the WebDriver error code (`no such element`, ...).
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }

    async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn current_url(&self) -> String {
        let v = self.must("GET", "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.must("POST", "/execute/sync", Some(body)).await
    }

    /// Polls `script` until it returns something truthy (not null/false/""), or fails the test
    /// with `what` after the deadline.
    pub async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let started = Instant::now();
        loop {
            let body = json!({"script": script, "args": args.clone()});
            if let Ok(v) = self.cmd("POST", "/execute/sync", Some(body)).await {
                let truthy =
                    !matches!(&v, Value::Null | Value::Bool(false)) && v.as_str() != Some("");
                if truthy {
                    return v;
                }
            }
            if started.elapsed() > DEADLINE {
                let text = self.eval("return document.body.innerText", vec![]).await;
                panic!(
                    "timed out waiting for {what}; the page says:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first element matching a CSS selector, waiting for it to be there and visible.
    pub async fn find(&self, css: &str) -> Element {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e && e.getClientRects().length ? e : null;";
        self.locate(Locator {
            what: format!("element {css}"),
            script,
            args: vec![json!(css)],
        })
        .await
    }

    /// The control whose `<label>` reads exactly `label`, inside the element matching `within`.
    pub async fn by_label(&self, within: &str, label: &str) -> Element {
        let script = "const root = document.querySelector(arguments[0]); if (!root) return null; \
             const l = [...root.querySelectorAll('label')].find(l => l.textContent.trim() === arguments[1] \
               && l.getClientRects().length); \
             return l ? document.getElementById(l.htmlFor) : null;";
        self.locate(Locator {
            what: format!("control labelled {label:?}"),
            script,
            args: vec![json!(within), json!(label)],
        })
        .await
    }

    /// The value of the control labelled `label` inside `within`, read in the same script
    /// that finds it (a page that re-renders between finding and reading cannot make it
    /// stale), once it is not empty.
    pub async fn value_of(&self, within: &str, label: &str) -> Value {
        let script = "const root = document.querySelector(arguments[0]); if (!root) return null; \
             const l = [...root.querySelectorAll('label')].find(l => l.textContent.trim() === arguments[1] \
               && l.getClientRects().length); \
             const c = l ? document.getElementById(l.htmlFor) : null; \
             return c ? c.value : null;";
        self.wait_for(
            &format!("the value of {label:?}"),
            script,
            vec![json!(within), json!(label)],
        )
        .await
    }

    /// The button or link (inside `within`) whose text is exactly `text`.
    pub async fn button(&self, within: &str, text: &str) -> Element {
        let script = "const root = document.querySelector(arguments[0]); if (!root) return null; \
             return [...root.querySelectorAll('button, a')].find(b => b.textContent.trim() === arguments[1] \
               && b.getClientRects().length) || null;";
        self.locate(Locator {
            what: format!("button {text:?}"),
            script,
            args: vec![json!(within), json!(text)],
        })
        .await
    }

    /// Waits for the element a locator finds.
    async fn locate(&self, locator: Locator) -> Element {
        let v = self
            .wait_for(&locator.what, locator.script, locator.args.clone())
            .await;
        Element {
            locator: Some(locator),
            ..element(&v)
        }
    }

    /// Runs an element command (`/element/{id}/<action>`). A page that re-renders or moves
    /// while the command arrives gives transient errors: those are retried until the deadline,
    /// a stale element found again by its locator.
    async fn act(&self, e: &Element, action: &str, body: Value) {
        let started = Instant::now();
        let mut id = e.id.clone();
        loop {
            let path = format!("/element/{id}/{action}");
            let err = match self.cmd("POST", &path, Some(body.clone())).await {
                Ok(_) => return,
                Err(err) => err,
            };
            let transient = [
                "stale element reference",
                "element click intercepted",
                "element not interactable",
            ]
            .iter()
            .any(|t| err.starts_with(t));
            assert!(
                transient && started.elapsed() < DEADLINE,
                "webdriver POST {path}: {err}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            if err.starts_with("stale element reference") {
                match &e.locator {
                    Some(l) => id = self.locate(l.clone()).await.id,
                    None => panic!("webdriver POST {path}: {err}"),
                }
            }
        }
    }

    pub async fn click(&self, e: &Element) {
        self.act(e, "click", json!({})).await;
    }

    /// Replaces the text of an input or textarea, as typed by a user.
    pub async fn fill(&self, e: &Element, text: &str) {
        self.act(e, "clear", json!({})).await;
        self.act(e, "value", json!({ "text": text })).await;
    }

    /// Chooses the option of a `<select>` whose value is `value`, as a user would.
    pub async fn choose(&self, select: &Element, value: &str) {
        let option = self
            .eval(
                "return [...arguments[0].options].find(o => o.value === arguments[1]) || null;",
                vec![select.as_arg(), json!(value)],
            )
            .await;
        assert!(!option.is_null(), "no option {value:?}");
        self.click(select).await;
        self.click(&element(&option)).await;
    }

    /// The visible text of the first element matching `css`, waiting until it contains `want`.
    /// Hidden elements do not count (`innerText` of one not rendered is its whole text, so a
    /// notice left hidden from an earlier step would match at once).
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        let script = "const e = [...document.querySelectorAll(arguments[0])] \
                        .find(e => e.getClientRects().length > 0 \
                                   && e.innerText.includes(arguments[1])); \
                      return e ? e.innerText : null;";
        let v = self
            .wait_for(
                &format!("{css} to contain {want:?}"),
                script,
                vec![json!(css), json!(want)],
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn set_size(&self, (width, height): (u32, u32)) {
        let rect = json!({"width": width, "height": height});
        self.must("POST", "/window/rect", Some(rect)).await;
    }

    /// Saves PNGs of the page into [`shots_dir`]: the whole page 1280 px wide (`<name>-1280.png`),
    /// and at 390 px screen by screen (`<name>-390-1.png`, ...), then returns to the wide window.
    pub async fn screenshots(&self, name: &str) {
        std::fs::create_dir_all(shots_dir()).unwrap();
        self.eval("document.activeElement?.blur()", vec![]).await;
        let height = self
            .eval("return document.documentElement.scrollHeight", vec![])
            .await
            .as_u64()
            .unwrap_or(900) as u32;
        self.set_size((WIDE.0, height.clamp(WIDE.1, 4000))).await;
        self.shot(0, &format!("{name}-1280")).await;
        self.set_size(PHONE).await;
        let (height, screen) = self.heights().await;
        for (i, top) in (0..height)
            .step_by(screen.max(1) as usize)
            .take(8)
            .enumerate()
        {
            self.shot(top, &format!("{name}-390-{}", i + 1)).await;
        }
        self.set_size(WIDE).await;
    }

    /// The page's height and the window's inner height.
    async fn heights(&self) -> (u32, u32) {
        let v = self
            .eval(
                "return [document.documentElement.scrollHeight, window.innerHeight]",
                vec![],
            )
            .await;
        let n = |i: usize| v[i].as_u64().unwrap_or(800) as u32;
        (n(0), n(1))
    }

    async fn shot(&self, top: u32, file: &str) {
        self.eval("window.scrollTo(0, arguments[0])", vec![json!(top)])
            .await;
        let png = self.must("GET", "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(shots_dir().join(format!("{file}.png")), bytes).unwrap();
    }
}

impl Element {
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

fn element(v: &Value) -> Element {
    Element {
        id: v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {v}"))
            .to_owned(),
        locator: None,
    }
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium) with a plain blocking request, then kills
    /// chromedriver: no browser outlives its test.
    fn drop(&mut self) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session_id
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let _ = s.read(&mut [0u8; 512]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
