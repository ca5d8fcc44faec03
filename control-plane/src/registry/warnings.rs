//! Warnings a write returns to its client (`Warning: 299 - "..."` headers,
//! which kubectl prints as `Warning: ...`). Admission steps deep in a
//! request add them with [`add`]; the HTTP edge runs each request inside
//! [`collect`] and turns what was added into headers.
//!
//! The sink is task-local: a request is one task, and writes the control
//! plane makes for itself (no [`collect`] around them) drop their warnings.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    /// The current request's warnings, in the order they were added.
    static SINK: RefCell<Vec<String>>;
}

/// Adds a warning to the current request's response (nothing outside a
/// request). Duplicates are kept once, as upstream's recorder does.
pub fn add(warning: impl Into<String>) {
    let warning = warning.into();
    let _ = SINK.try_with(|sink| {
        let mut sink = sink.borrow_mut();
        if !sink.contains(&warning) {
            sink.push(warning);
        }
    });
}

/// Runs `request`, returning its output and the warnings it added.
pub async fn collect<F: Future>(request: F) -> (F::Output, Vec<String>) {
    SINK.scope(RefCell::new(Vec::new()), async {
        let output = request.await;
        let warnings = SINK.with(|sink| sink.take());
        (output, warnings)
    })
    .await
}

/// The `Warning` header value for `text` (RFC 7234: code 299, agent `-`,
/// the text as a quoted string with `"` and `\` escaped); control
/// characters, which a header cannot carry, become spaces.
pub fn header_value(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 10);
    quoted.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn warnings_added_in_a_request_are_collected_once() {
        let ((), warnings) = collect(async {
            add("a");
            tokio::task::yield_now().await;
            add("b");
            add("a");
        })
        .await;
        assert_eq!(warnings, ["a", "b"]);
        add("outside a request: dropped");
    }

    #[test]
    fn header_values_quote_and_escape() {
        assert_eq!(
            header_value("would violate PodSecurity \"restricted:latest\": x\\y\n"),
            "299 - \"would violate PodSecurity \\\"restricted:latest\\\": x\\\\y \""
        );
    }
}
