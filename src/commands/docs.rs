//! `gemauth completions SHELL` and `gemauth man [SUBCOMMAND | --dir DIR]`: generated from the clap
//! definitions. Man pages are clap_mangen's sections plus this module's own: the help text's
//! examples (kept line by line), its exit codes as EXIT STATUS, and SEE ALSO.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, Result};

pub(crate) fn completions(args: CompletionsArgs) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "gemauth", &mut out);
    write_stdout(&out)
}

pub(crate) fn man(args: ManArgs) -> Result<()> {
    let root = man_command();
    if let Some(dir) = &args.dir {
        return write_all(&root, dir);
    }
    let page = match &args.subcommand {
        None => page(&root)?,
        Some(name) => {
            let sub = root.find_subcommand(name).ok_or_else(|| {
                let names: Vec<&str> = root.get_subcommands().map(|s| s.get_name()).collect();
                Error::Usage(format!(
                    "no man page for {:?}; there is one per subcommand: {}",
                    crate::error::sanitize(name),
                    names.join(", ")
                ))
            })?;
            page(sub)?
        }
    };
    write_stdout(&page)
}

/// The command tree the pages describe: every subcommand's options built, no `help` pseudo-command
/// (it has no page).
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// `gemauth.1` and `gemauth-SUBCOMMAND.1` for every subcommand, in `dir` (created if needed).
fn write_all(root: &clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "cannot create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let commands = std::iter::once(root).chain(root.get_subcommands().filter(|s| !s.is_hide_set()));
    let mut count = 0;
    for cmd in commands {
        let path = dir.join(format!("{}.1", page_name(cmd)));
        std::fs::write(&path, page(cmd)?).map_err(|source| Error::Io {
            action: "cannot write",
            path: path.clone(),
            source,
        })?;
        count += 1;
    }
    eprintln!("Wrote {count} man pages to {}", dir.display());
    Ok(())
}

/// `gemauth`, or `gemauth-login` for a subcommand (as clap names it once built).
fn page_name(cmd: &clap::Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// One page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS (and for gemauth(1) the SUBCOMMANDS, each a
/// page of its own), then the help text's EXAMPLES, EXIT STATUS and NOTES, VERSION and SEE ALSO.
fn page(cmd: &clap::Command) -> Result<Vec<u8>> {
    let after = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|text| text.to_string())
        .unwrap_or_default();
    let man = clap_mangen::Man::new(
        cmd.clone()
            .after_help(None::<&str>)
            .after_long_help(None::<&str>),
    )
    .source(format!("gemauth {}", env!("CARGO_PKG_VERSION")));
    let top = cmd.has_subcommands();
    let mut out = Vec::new();
    let sections: [&Render; 5] = [
        &|w| man.render_title(w),
        &|w| man.render_name_section(w),
        &|w| man.render_synopsis_section(w),
        &|w| man.render_description_section(w),
        &|w| man.render_options_section(w),
    ];
    for render in sections {
        section(&mut out, render)?;
    }
    if top {
        section(&mut out, &|w| man.render_subcommands_section(w))?;
    }
    section(&mut out, &|w| help_sections(&after).to_writer(w))?;
    section(&mut out, &|w| man.render_version_section(w))?;
    if !top {
        let mut see_also = roff::Roff::new();
        see_also
            .control("SH", ["SEE ALSO"])
            .text([roff::bold("gemauth"), roff::roman("(1)")]);
        section(&mut out, &|w| see_also.to_writer(w))?;
    }
    Ok(ascii_only(&out))
}

/// The page with every character beyond ASCII (`…`, `→`) written as a roff escape (`\[u2026]`):
/// groff and mandoc read ASCII input without a preprocessor or a warning.
fn ascii_only(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out.into_bytes()
}

/// Writes one section of a page.
type Render<'a> = dyn Fn(&mut Vec<u8>) -> std::io::Result<()> + 'a;

/// Appends one rendered section; every rendering starts with the same two-line preamble
/// (a string for the apostrophe), which the page needs once.
fn section(out: &mut Vec<u8>, render: &Render) -> Result<()> {
    let mut text = Vec::new();
    render(&mut text).map_err(|e| Error::Internal(format!("cannot render the man page: {e}")))?;
    let mut rest: &[u8] = &text;
    if !out.is_empty() {
        while rest.starts_with(b".ie \\n(.g .ds Aq") || rest.starts_with(b".el .ds Aq") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            rest = &rest[end..];
        }
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// The help text after the options, as man sections: "Example…:" paragraphs become EXAMPLES and
/// "Exit codes:" EXIT STATUS, both without filling (each line stays a line); other paragraphs
/// are NOTES.
fn help_sections(after: &str) -> roff::Roff {
    let mut roff = roff::Roff::new();
    let mut examples_open = false;
    for paragraph in after
        .split("\n\n")
        .map(str::trim_end)
        .filter(|p| !p.is_empty())
    {
        let mut lines = paragraph.lines();
        let first = lines.next().unwrap_or_default();
        let body: Vec<&str> = if first == "Exit codes:" {
            roff.control("SH", ["EXIT STATUS"]);
            lines.collect()
        } else if first.starts_with("Example") {
            if !examples_open {
                roff.control("SH", ["EXAMPLES"]);
                examples_open = true;
            }
            if matches!(first, "Example:" | "Examples:") {
                lines.collect()
            } else {
                paragraph.lines().collect()
            }
        } else {
            roff.control("SH", ["NOTES"]);
            let text = paragraph
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            roff.text([roff::roman(text)]);
            continue;
        };
        roff.control("nf", []);
        for line in body {
            roff.text([roff::roman(line)]);
        }
        roff.control("fi", []);
    }
    roff
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Internal(format!("cannot write to stdout: {e}")))
}
