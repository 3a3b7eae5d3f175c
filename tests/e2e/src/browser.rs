//! A real browser for what a person opens: Debian's `chromium`, headless (`make chromium`
//! installs it; `CHROMIUM` names another). A page is loaded as a person's browser would load it,
//! its script run, and what a test checks is read back: the DOM after the script, what the page
//! wrote to the console, a screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the browser made of a page.
pub struct Opened {
    /// The DOM once the page's script ran, serialised.
    pub dom: String,
    /// Every console message and uncaught error, as Chromium logs them.
    pub console: Vec<String>,
    /// The screenshot (PNG) of the first `height` pixels at 1280 wide.
    pub screenshot: PathBuf,
}

/// The browser's path: `CHROMIUM`, or `chromium` on the PATH.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "chromium".into());
    let found = Command::new(&path).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "{} does not run: `make chromium` installs Debian's chromium (apt-get)", path.display());
    path
}

/// Runs the browser headless on `page` with `flags`; returns its stdout, and its stderr's
/// console lines.
fn run(page: &Path, profile: &Path, flags: &[&str]) -> (String, Vec<String>) {
    let url = format!("file://{}", page.canonicalize().expect("the page exists").display());
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(flags)
        .arg(url)
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed on {}: {stderr}", page.display());
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_owned).collect();
    (String::from_utf8_lossy(&output.stdout).into_owned(), console)
}

/// Opens `page` (a local HTML file): its DOM after its script, its console, a screenshot of
/// `height` pixels beside it (`<page>.png`; `dark`: with the system's dark colour scheme).
pub fn open(page: &Path, height: u32, dark: bool) -> Opened {
    let profile = page.with_extension("chromium-profile");
    let screenshot = page.with_extension(if dark { "dark.png" } else { "png" });
    let scheme =
        if dark { "--blink-settings=preferredColorScheme=0" } else { "--blink-settings=preferredColorScheme=1" };
    let (dom, mut console) = run(page, &profile, &["--dump-dom", scheme]);
    let size = format!("--window-size=1280,{height}");
    let shot = format!("--screenshot={}", screenshot.display());
    let (_, more) = run(page, &profile, &[&shot, &size, scheme, "--hide-scrollbars", "--force-color-profile=srgb"]);
    console.extend(more);
    let _ = std::fs::remove_dir_all(&profile);
    Opened { dom, console, screenshot }
}
