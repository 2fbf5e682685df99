//! A real browser for the dashboard's tests: headless Chromium driven over
//! WebDriver (chromedriver, fantoccini).
//!
//! ```ignore
//! let Some(browser) = Browser::start().await else { return }; // skipped: no chromedriver
//! browser.goto(&format!("{base}/signin")).await;
//! browser.fill("#token", &token).await;
//! browser.click("button[type=submit]").await;
//! browser.wait_for_path("/scripts").await;
//! browser.screenshot("scripts").await; // <target>/browser-screenshots/<test>-scripts.png
//! ```
//!
//! Every helper panics with what it was doing and the page's URL when the
//! browser does not do it; a wait that times out saves a screenshot first.
//! Dropping the [`Browser`] kills chromedriver and the Chromium it started.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// How long the waits wait unless told otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// What pages see of the window (CSS pixels), so layouts and screenshots
/// are the same everywhere.
pub const VIEWPORT: (u32, u32) = (1280, 900);

/// A headless Chromium and the chromedriver driving it, for one test.
pub struct Browser {
    client: Client,
    driver: Child,
    test: String,
    /// Chromium's fresh profile (`--user-data-dir`) and chromedriver's log.
    scratch: tempfile::TempDir,
}

/// A cookie as the browser holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserCookie {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`, as the browser reports it; `None` here
    /// when it reports nothing.
    pub same_site: Option<String>,
}

/// Where chromedriver is: `/usr/bin/chromedriver`, or on `PATH`.
pub fn chromedriver_path() -> Option<PathBuf> {
    let standard = PathBuf::from("/usr/bin/chromedriver");
    if standard.is_file() {
        return Some(standard);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|path| path.is_file())
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// with a fresh profile. `None`, after saying the test is skipped, only
    /// when chromedriver is not installed (`tests/setup` installs it); any
    /// other failure to start panics.
    pub async fn start() -> Option<Self> {
        let Some(chromedriver) = chromedriver_path() else {
            eprintln!(
                "skipped: chromedriver is not installed (run tests/setup, or \
                 apt-get install chromium chromium-driver) for the browser tests"
            );
            return None;
        };
        let scratch = tempfile::Builder::new()
            .prefix("roost-browser-")
            .tempdir()
            .expect("making the browser's scratch directory");
        let log = scratch.path().join("chromedriver.log");
        let (mut driver, url) = start_chromedriver(&chromedriver, &log);
        let client = match connect(&url, scratch.path()).await {
            Ok(client) => client,
            Err(err) => {
                kill_group(&mut driver);
                panic!(
                    "starting headless Chromium through {}: {err}\nchromedriver's log:\n{}",
                    chromedriver.display(),
                    tail(&log)
                );
            }
        };
        let browser = Self {
            client,
            driver,
            test: sanitize(&test_name()),
            scratch,
        };
        // Dropping `browser` from here on kills chromedriver and Chromium.
        browser.set_viewport(VIEWPORT.0, VIEWPORT.1).await;
        Some(browser)
    }

    /// Makes pages see `width`×`height` CSS pixels; screenshots are that
    /// size. Chromium's windows are at least 500 pixels wide, so a narrower
    /// viewport is emulated ([`Browser::emulate_phone`] also behaves as a
    /// phone).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
            .await;
        // The window's frame takes some of its outer size: ask the page how
        // much, and size the window for the rest.
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|err| panic!("sizing the browser window: {err}"));
        let [inner_width, inner_height] = self.inner_size().await;
        if (inner_width, inner_height) != (width, height) {
            self.client
                .set_window_size(
                    width + (width - inner_width.min(width)),
                    height + (height - inner_height.min(height)),
                )
                .await
                .unwrap_or_else(|err| panic!("sizing the browser window: {err}"));
        }
        if self.inner_size().await != [width, height] {
            self.override_metrics(width, height, false).await;
        }
    }

    /// Makes pages see a phone's screen, `width`×`height` CSS pixels
    /// (390×844, say), with what a phone's browser does: `<meta
    /// name=viewport>` applies and scrollbars overlay.
    pub async fn emulate_phone(&self, width: u32, height: u32) {
        self.override_metrics(width, height, true).await;
    }

    async fn override_metrics(&self, width: u32, height: u32, mobile: bool) {
        let metrics = json!({
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
        });
        self.cdp("Emulation.setDeviceMetricsOverride", metrics)
            .await;
    }

    /// `window.innerWidth` and `window.innerHeight`.
    async fn inner_size(&self) -> [u32; 2] {
        let size = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap_or_else(|err| panic!("reading the viewport's size: {err}"));
        [0, 1].map(|i| size[i].as_u64().unwrap_or(0) as u32)
    }

    /// Sends the Chrome DevTools Protocol command `method` with `params`
    /// (<https://chromedevtools.github.io/devtools-protocol/>); its result.
    pub async fn cdp(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let command = Cdp {
            method: method.to_string(),
            params,
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|err| panic!("the DevTools command {method}: {err}"))
    }

    /// The fantoccini client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("opening {url}: {err}"));
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(err) => format!("<unknown URL: {err}>"),
        }
    }

    /// The path of the page's URL now (`/scripts`).
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|url| url.path().to_string())
            .unwrap_or_else(|err| panic!("reading the page's URL: {err}"))
    }

    /// The first element matching `css`; panics when there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(err) => panic!("no element matches `{css}` at {}: {err}", self.url().await),
        }
    }

    /// Every element matching `css` (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("looking for `{css}`: {err}"))
    }

    /// Replaces the value of the field matching `css` with `value`, typed
    /// as a person would.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        if let Err(err) = field.clear().await {
            panic!("clearing `{css}` at {}: {err}", self.url().await);
        }
        if let Err(err) = field.send_keys(value).await {
            panic!("typing into `{css}` at {}: {err}", self.url().await);
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(err) = element.click().await {
            panic!("clicking `{css}` at {}: {err}", self.url().await);
        }
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        match element.text().await {
            Ok(text) => text,
            Err(err) => panic!("reading the text of `{css}` at {}: {err}", self.url().await),
        }
    }

    /// The value of `name` on the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        match element.attr(name).await {
            Ok(value) => value,
            Err(err) => panic!("reading `{name}` of `{css}` at {}: {err}", self.url().await),
        }
    }

    /// Waits up to [`WAIT`] for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Element {
        let what = format!("an element matching `{css}`");
        self.wait_until(&what, timeout, || async {
            self.client
                .find_all(Locator::Css(css))
                .await
                .ok()?
                .into_iter()
                .next()
        })
        .await
    }

    /// Waits up to [`WAIT`] for an element matching `css` whose text
    /// contains `text`; its whole text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        self.wait_for_text_within(css, text, WAIT).await
    }

    /// Waits up to `timeout` for an element matching `css` whose text
    /// contains `text`; its whole text.
    pub async fn wait_for_text_within(&self, css: &str, text: &str, timeout: Duration) -> String {
        let what = format!("the text {text:?} in `{css}`");
        self.wait_until(&what, timeout, || async {
            for element in self.client.find_all(Locator::Css(css)).await.ok()? {
                if let Ok(found) = element.text().await
                    && found.contains(text)
                {
                    return Some(found);
                }
            }
            None
        })
        .await
    }

    /// Waits up to [`WAIT`] for the page's path to be `path` (after a
    /// redirect, say).
    pub async fn wait_for_path(&self, path: &str) {
        let what = format!("the path {path}");
        self.wait_until(&what, WAIT, || async {
            let url = self.client.current_url().await.ok()?;
            (url.path() == path).then_some(())
        })
        .await
    }

    /// Polls `check` until it answers or `timeout` passes; then panics
    /// naming `what`, the URL, and a screenshot of the page.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check().await {
                return found;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.url().await;
        let shot = self.try_screenshot("timeout").await;
        let body = self.body_text().await;
        panic!(
            "timed out after {timeout:?} waiting for {what} at {url} (screenshot: {shot})\n\
             the page says:\n{body}"
        );
    }

    /// The page's rendered text, or nothing when it cannot be read.
    async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Every cookie the browser holds for the current page.
    pub async fn cookies(&self) -> Vec<BrowserCookie> {
        let cookies = match self.client.get_all_cookies().await {
            Ok(cookies) => cookies,
            Err(err) => panic!("reading the cookies at {}: {err}", self.url().await),
        };
        cookies
            .into_iter()
            .map(|cookie| BrowserCookie {
                name: cookie.name().to_string(),
                value: cookie.value().to_string(),
                path: cookie.path().map(str::to_string),
                http_only: cookie.http_only().unwrap_or(false),
                secure: cookie.secure().unwrap_or(false),
                same_site: cookie.same_site().map(|same_site| same_site.to_string()),
            })
            .collect()
    }

    /// The cookie `name` for the current page, if the browser holds one.
    pub async fn cookie(&self, name: &str) -> Option<BrowserCookie> {
        self.cookies()
            .await
            .into_iter()
            .find(|cookie| cookie.name == name)
    }

    /// Saves a PNG of the page as
    /// `<target dir>/browser-screenshots/<test>-<name>.png` for a person to
    /// look at, prints its path and returns it.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(err) => panic!("taking a screenshot at {}: {err}", self.url().await),
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("making {}: {err}", dir.display()));
        let path = dir.join(format!("{}-{}.png", self.test, sanitize(name)));
        std::fs::write(&path, png)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// A screenshot for a failure message: its path, or why there is none.
    async fn try_screenshot(&self, name: &str) -> String {
        let Ok(png) = self.client.screenshot().await else {
            return "none: the browser took none".into();
        };
        let path = screenshot_dir().join(format!("{}-{}.png", self.test, sanitize(name)));
        match std::fs::create_dir_all(screenshot_dir()).and_then(|()| std::fs::write(&path, png)) {
            Ok(()) => path.display().to_string(),
            Err(err) => format!("none: writing {}: {err}", path.display()),
        }
    }

    /// chromedriver's log so far (for a failure message).
    pub fn driver_log(&self) -> String {
        tail(&self.scratch.path().join("chromedriver.log"))
    }
}

impl Drop for Browser {
    /// Kills chromedriver and every Chromium process it started (they share
    /// its process group), even when the test panicked.
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// chromedriver's endpoint for a DevTools command in the session.
#[derive(Debug)]
struct Cdp {
    method: String,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Starts chromedriver on a port it picks (`--port=0`) in a process group of
/// its own; the child and its URL.
fn start_chromedriver(chromedriver: &Path, log: &Path) -> (Child, String) {
    use std::os::unix::process::CommandExt as _;
    let mut driver = Command::new(chromedriver)
        .arg("--port=0")
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {}: {err}", chromedriver.display()));
    let stdout = driver.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the announced port, then drains stdout so chromedriver never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut said = Vec::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(tx) = tx.take_if(|_| line.contains("started successfully")) {
                let port = line
                    .trim_end_matches('.')
                    .rsplit(' ')
                    .next()
                    .and_then(|port| port.parse::<u16>().ok());
                let _ = tx.send(port.ok_or_else(|| format!("no port in {line:?}")));
            } else if tx.is_some() {
                said.push(line);
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(Err(format!(
                "it exited before listening, saying:\n{}",
                said.join("\n")
            )));
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(port)) => (driver, format!("http://127.0.0.1:{port}")),
        failed => {
            kill_group(&mut driver);
            let why = match failed {
                Ok(Err(why)) => why,
                _ => "it did not say it was listening within 20s".into(),
            };
            panic!("starting {}: {why}\n{}", chromedriver.display(), tail(log));
        }
    }
}

/// A WebDriver session of headless Chromium with a profile in `scratch`.
async fn connect(url: &str, scratch: &Path) -> Result<Client, fantoccini::error::NewSessionError> {
    let profile = scratch.join("profile");
    let args = vec![
        "--headless".to_string(),
        // These machines run the tests as root, where Chromium's sandbox
        // cannot start; the pages under test are our own.
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1),
        format!("--user-data-dir={}", profile.display()),
        "--lang=en-US".into(),
    ];
    let mut options = json!({ "args": args });
    let chromium = Path::new("/usr/bin/chromium");
    if chromium.is_file() {
        options["binary"] = json!(chromium);
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    // chromedriver is on loopback over plain HTTP: no TLS needed.
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(url)
        .await
}

/// SIGKILL to the child's whole process group (chromedriver and the
/// Chromium processes it started), then reaps the child.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The running test's name, which the test harness gives its thread
/// (`module::test`); `browser` outside a test thread.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("browser")
        .to_string()
}

fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.replace("::", "-").chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

/// `<target dir>/browser-screenshots`: `$CARGO_TARGET_DIR` when it is an
/// absolute path, otherwise the target directory the running test binary is
/// in (`<target>/<profile>/deps/<test>-<hash>`), otherwise `./target`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let deps = exe.parent()?;
            (deps.file_name()? == "deps").then(|| deps.parent()?.parent().map(Path::to_path_buf))?
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("browser-screenshots")
}

/// The last lines of the file at `path`, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
