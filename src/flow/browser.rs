//! Opening the authorization URL in a browser: `$BROWSER`, else the system's launchers.

/// True when a browser can plausibly be opened here: `$BROWSER` is set, on macOS and Windows,
/// under WSL (Windows' browser), or on Linux and other Unix desktops when a display is available.
pub(super) fn available() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") || is_wsl() {
        return true;
    }
    if cfg!(all(unix, not(target_os = "macos"))) {
        return set("DISPLAY") || set("WAYLAND_DISPLAY");
    }
    true
}

/// Opens the authorization URL: `$BROWSER` if set (split into words like a shell would, `%s`
/// replaced by the URL or the URL appended), else the system's launchers (`open` crate). An
/// error means nothing could be started; a launcher that starts and then fails is reported
/// later through `on_failure`, from a background thread. A failure never ends the login.
pub(super) fn open(
    url: &str,
    on_failure: impl FnOnce(String) + Send + 'static,
) -> std::result::Result<(), String> {
    let commands = match std::env::var("BROWSER") {
        Ok(cmd) if !cmd.trim().is_empty() => vec![browser_command(&cmd, url)?],
        _ => system_launchers(url, is_wsl()),
    };
    let mut last_error = "no browser launcher found".to_string();
    let mut commands = commands.into_iter();
    for mut command in commands.by_ref() {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match command.spawn() {
            Ok(mut child) => {
                std::thread::spawn(move || match child.wait() {
                    Ok(status) if !status.success() => {
                        on_failure(format!("{program:?} exited with {status}"))
                    }
                    _ => {}
                });
                return Ok(());
            }
            Err(e) => last_error = format!("cannot start {program:?} ({e})"),
        }
    }
    Err(last_error)
}

/// True under the Windows Subsystem for Linux, where the browser is Windows' own.
fn is_wsl() -> bool {
    #[cfg(target_os = "linux")]
    return is_wsl::is_wsl();
    #[cfg(not(target_os = "linux"))]
    return false;
}

/// The system's ways to open a URL, in order: under WSL `wslview` (wslu, installed with most WSL
/// distributions) first; then the `open` crate's: `open` on macOS, the default browser's handler
/// on Windows, PowerShell under WSL, `xdg-open` and the desktops' tools on Linux.
fn system_launchers(url: &str, wsl: bool) -> Vec<std::process::Command> {
    let mut commands = Vec::new();
    if wsl {
        let mut wslview = std::process::Command::new("wslview");
        wslview.arg(url);
        commands.push(wslview);
    }
    commands.extend(open::commands(url));
    commands
}

fn browser_command(cmd: &str, url: &str) -> std::result::Result<std::process::Command, String> {
    let cmd = if cfg!(windows) {
        literal_backslashes(cmd)
    } else {
        cmd.to_string()
    };
    let mut words = shell_words::split(&cmd).map_err(|e| format!("cannot parse $BROWSER ({e})"))?;
    if words.is_empty() {
        return Err("$BROWSER is empty".into());
    }
    if words.iter().any(|w| w.contains("%s")) {
        for w in &mut words {
            *w = w.replace("%s", url);
        }
    } else {
        words.push(url.to_string());
    }
    let mut command = std::process::Command::new(&words[0]);
    command.args(&words[1..]);
    Ok(command)
}

/// Escapes the backslashes of a Windows command (`C:\Program Files\…\browser.exe`) so that
/// shell-style splitting keeps them as they are: on Windows they separate path components. Quotes
/// still group words; inside single quotes nothing is escaped, so nothing is changed there.
fn literal_backslashes(cmd: &str) -> String {
    let mut out = String::with_capacity(cmd.len());
    let (mut single, mut double) = (false, false);
    for c in cmd.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsl_opens_the_url_with_wslview_first() {
        let url = "http://127.0.0.1:1/auth?a=b&c=d";
        let programs = |wsl| -> Vec<(String, Vec<String>)> {
            system_launchers(url, wsl)
                .iter()
                .map(|c| {
                    let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
                    (s(c.get_program()), c.get_args().map(s).collect())
                })
                .collect()
        };
        let under_wsl = programs(true);
        assert_eq!(under_wsl[0], ("wslview".to_string(), vec![url.to_string()]));
        assert_eq!(under_wsl[1..], programs(false)[..]);
        let native = programs(false);
        if cfg!(target_os = "macos") {
            assert_eq!(
                native[0],
                ("/usr/bin/open".into(), vec!["--".into(), url.into()])
            );
        } else if cfg!(windows) {
            assert!(native.iter().any(|(program, _)| program == "explorer.exe"));
        } else {
            assert!(native.iter().any(|(program, _)| program == "xdg-open"));
        }
    }

    #[test]
    fn windows_browser_paths_keep_their_backslashes() {
        let split = |cmd: &str| shell_words::split(&literal_backslashes(cmd)).unwrap();
        assert_eq!(
            split(r#""C:\Program Files\Browser\browser.exe" --new-window"#),
            [r"C:\Program Files\Browser\browser.exe", "--new-window"]
        );
        assert_eq!(
            split(r"C:\Users\me\open.cmd %s"),
            [r"C:\Users\me\open.cmd", "%s"]
        );
        assert_eq!(split(r"'C:\a b\c.exe' x"), [r"C:\a b\c.exe", "x"]);
        assert_eq!(split(r#""it's" C:\x"#), ["it's", r"C:\x"]);
    }
}
