//! Opening the authorization URL in a browser: `$BROWSER`, else the system's launchers.

/// True when a browser can plausibly be opened here: `$BROWSER` is set, or (on Linux and other
/// Unix desktops) a display is available.
pub fn available() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") {
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
pub fn open(
    url: &str,
    on_failure: impl FnOnce(String) + Send + 'static,
) -> std::result::Result<(), String> {
    let commands = match std::env::var("BROWSER") {
        Ok(cmd) if !cmd.trim().is_empty() => vec![browser_command(&cmd, url)?],
        _ => open::commands(url),
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

fn browser_command(cmd: &str, url: &str) -> std::result::Result<std::process::Command, String> {
    let mut words = shell_words::split(cmd).map_err(|e| format!("cannot parse $BROWSER ({e})"))?;
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
