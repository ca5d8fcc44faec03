//! Phase timings of a VM test, written straight to the process's stderr:
//! the test harness captures `eprintln!` of passing tests, and CI logs
//! should show where the minutes go either way.

use std::io::Write;
use std::time::{Duration, Instant};

/// The phases measured so far.
#[derive(Debug)]
pub struct Phases {
    current: Option<(String, Instant)>,
    done: Vec<(String, Duration)>,
    started: Instant,
}

impl Default for Phases {
    fn default() -> Self {
        Self::new()
    }
}

impl Phases {
    /// Starts measuring.
    pub fn new() -> Self {
        Self {
            current: None,
            done: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Ends the running phase (if any) and starts `name`.
    pub fn start(&mut self, name: &str) {
        self.finish();
        say(&format!("vm phase {name}: started"));
        self.current = Some((name.to_string(), Instant::now()));
    }

    /// Ends the running phase.
    pub fn finish(&mut self) {
        if let Some((name, since)) = self.current.take() {
            let took = since.elapsed();
            say(&format!("vm phase {name}: {:.1} s", took.as_secs_f64()));
            self.done.push((name, took));
        }
    }

    /// A line of the summary: every phase and the total.
    pub fn summary(&mut self) -> String {
        self.finish();
        let phases: Vec<String> = self
            .done
            .iter()
            .map(|(name, took)| format!("{name} {:.1} s", took.as_secs_f64()))
            .collect();
        format!(
            "vm phases: {}; total {:.1} s",
            phases.join(", "),
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// A line on stderr, past the test harness's capture.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
