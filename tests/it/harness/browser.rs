//! The fake browser: the script `BROWSER` points at, and a test playing the user's browser
//! (following the authorization URL) or a browser on another device.

use super::*;

/// The fake browser's file name and text: it hands its arguments to the test, one a line, in
/// the file `browser-args` beside it (written whole, by a rename); the test follows the URL.
#[cfg(unix)]
pub(super) const FAKE_BROWSER: (&str, &str) = (
    "browser.sh",
    "#!/bin/sh\nout=\"$(dirname \"$0\")/browser-args\"\n\
     printf '%s\\n' \"$@\" > \"$out.tmp\" && mv \"$out.tmp\" \"$out\"\n",
);
/// On Windows a JScript run by cscript: a batch file would get its arguments through cmd.exe,
/// which mangles the `%` of a URL's escapes under Wine.
#[cfg(windows)]
pub(super) const FAKE_BROWSER: (&str, &str) = (
    "browser.js",
    "var fso = new ActiveXObject('Scripting.FileSystemObject');\r\n\
     var dir = fso.GetParentFolderName(WScript.ScriptFullName);\r\n\
     var tmp = dir + '\\\\browser-args.tmp', out = dir + '\\\\browser-args';\r\n\
     var f = fso.CreateTextFile(tmp, true);\r\n\
     for (var i = 0; i < WScript.Arguments.length; i++) f.WriteLine(WScript.Arguments(i));\r\n\
     f.Close();\r\n\
     if (fso.FileExists(out)) fso.DeleteFile(out);\r\n\
     fso.MoveFile(tmp, out);\r\n",
);

/// Plays the user's browser: opens the authorization URL at the fake server, then follows its
/// redirect to gemauth's loopback listener. Returns the listener's page.
pub(crate) fn follow_authorization(url: &str) -> Page {
    let auth = http_get(url);
    assert_eq!(auth.status, 302, "authorization endpoint: {}", auth.body);
    http_get(&auth.headers["location"])
}

/// Plays a browser on another device: approves at the fake server and returns the redirect
/// address it would show (without following it to the listener).
pub(crate) fn approve_elsewhere(url: &str) -> String {
    let auth = http_get(url);
    assert_eq!(auth.status, 302, "authorization endpoint: {}", auth.body);
    auth.headers["location"].clone()
}
