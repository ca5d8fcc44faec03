//! What `skiff` tells the user while it works. Every write ignores errors:
//! the terminal may be gone or the pipe's reader killed (`skiff up | tee
//! log`, then Ctrl-C kills `tee` first), and a lost line must never stop
//! a cleanup half-way (`eprintln!` panics on a closed pipe).

use std::io::Write;

/// A step: `==> text` on stderr.
pub fn step(text: &str) {
    let _ = writeln!(std::io::stderr(), "==> {text}");
}

/// A line under a step, indented.
pub fn detail(text: &str) {
    line(&format!("    {text}"));
}

/// A line on stderr, as it is.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A line on stderr without its newline, for counters redrawn with `\r`.
pub fn partial(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

/// A line on stdout: results another program may read.
pub fn out(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}
