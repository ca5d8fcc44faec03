//! `skiff token create|list|delete`: bootstrap tokens after the first, as
//! kubeadm's `token` commands manage them. A token is a Secret
//! `kube-system/bootstrap-token-<id>` (type `bootstrap.kubernetes.io/token`,
//! fields in [`skiff_pki::token::TokenSecret`]) that the node port's `Join`
//! checks: `token-id`/`token-secret`, `usage-bootstrap-authentication`
//! and `expiration`. `Join` gives no groups to whoever holds a token (it
//! signs a node certificate), so, unlike kubeadm, tokens are made without
//! `auth-extra-groups`; `list` shows those a hand-made Secret carries.
//!
//! The cluster is found from `--kubeconfig FILE`, or the kubeconfig the
//! control plane writes into `--data-dir DIR` (of `skiff up` or `skiff
//! server`), or `$KUBECONFIG`; its CA gives `--print-join-command` the
//! hash agents pin.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use skiff_pki::token::{
    BootstrapToken, ID_PATTERN, NAMESPACE, PATTERN, SECRET_TYPE, TokenSecret, USAGE_AUTHENTICATION,
    USAGE_SIGNING,
};

use crate::api::Api;
use crate::kubeconfig::Kubeconfig;
use crate::{join, progress};

/// kubeadm's default `--ttl`.
pub const DEFAULT_TTL: &str = "24h";

/// `skiff token`'s subcommands.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token on the server and print it (or the `skiff
    /// agent` line that joins with it).
    Create {
        /// How long the token joins nodes (`90m`, `24h`, `1h30m`); `0`:
        /// it never expires.
        #[arg(long, default_value = DEFAULT_TTL, value_parser = parse_ttl)]
        ttl: Duration,
        /// A note for people, shown by `skiff token list`.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Print the whole `skiff agent --server ... --token ...
        /// --ca-cert-hash ...` line instead of the token alone.
        #[arg(long)]
        print_join_command: bool,
        /// The token to write (`[a-z0-9]{6}.[a-z0-9]{16}`); a random one
        /// when not given.
        token: Option<String>,
    },
    /// List the bootstrap tokens on the server.
    List,
    /// Delete bootstrap tokens, given whole or by id; a deleted token
    /// joins no more nodes.
    Delete {
        /// `[a-z0-9]{6}.[a-z0-9]{16}` or `[a-z0-9]{6}`.
        #[arg(value_name = "TOKEN|ID")]
        tokens: Vec<String>,
    },
}

/// Which cluster `skiff token` acts on.
#[derive(clap::Args)]
pub struct Target {
    /// The data folder of `skiff up` or `skiff server` (its kubeconfig).
    #[arg(long, value_name = "DIR", global = true, conflicts_with = "kubeconfig")]
    data_dir: Option<PathBuf>,
    /// A kubeconfig whose user may manage Secrets in kube-system (default:
    /// $KUBECONFIG).
    #[arg(long, value_name = "FILE", global = true)]
    kubeconfig: Option<PathBuf>,
}

impl Target {
    fn kubeconfig_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(file) = &self.kubeconfig {
            return Ok(file.clone());
        }
        if let Some(dir) = &self.data_dir {
            return Ok(dir.join("kubeconfig"));
        }
        match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(list) => std::env::split_paths(&list)
                .next()
                .context("$KUBECONFIG names no file"),
            None => bail!(
                "no cluster given: pass --data-dir DIR (of skiff up or skiff server) or --kubeconfig FILE"
            ),
        }
    }
}

/// Runs `skiff token <command>`.
pub fn run(command: TokenCommand, target: &Target) -> anyhow::Result<()> {
    // Arguments first: a malformed one is refused before any cluster is
    // looked for, as kubeadm does.
    match command {
        TokenCommand::Create {
            ttl,
            description,
            print_join_command,
            token,
        } => {
            let token = match token {
                Some(text) => BootstrapToken::parse(&text)?,
                None => BootstrapToken::generate()?,
            };
            let config = Kubeconfig::load(&target.kubeconfig_path()?)?;
            let api = Api::from_kubeconfig(&config)?;
            store(&api, &spec(token.clone(), ttl, Utc::now(), &description))?;
            if print_join_command {
                let hash = skiff_pki::ca::hash_of_pem(&config.ca_pem)
                    .context("hashing the kubeconfig's CA")?;
                progress::out(&join::agent_command(&config.server, &token, &hash));
            } else {
                progress::out(&token.to_string());
            }
            Ok(())
        }
        TokenCommand::List => {
            let api = Api::from_kubeconfig(&Kubeconfig::load(&target.kubeconfig_path()?)?)?;
            list(&api)
        }
        TokenCommand::Delete { tokens } => {
            if tokens.is_empty() {
                bail!(
                    "missing argument; 'token delete' is missing token of form {PATTERN:?} or {ID_PATTERN:?}"
                );
            }
            let ids = tokens
                .iter()
                .map(|t| token_id(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let api = Api::from_kubeconfig(&Kubeconfig::load(&target.kubeconfig_path()?)?)?;
            for id in ids {
                delete(&api, &id)?;
                progress::out(&format!("bootstrap token {id:?} deleted"));
            }
            Ok(())
        }
    }
}

/// How long the token `skiff up` makes for its own nodes joins nodes
/// ([`DEFAULT_TTL`]).
pub const START_TTL: Duration = Duration::from_secs(24 * 3600);

/// Makes a new bootstrap token valid for `ttl` through the API (a Secret
/// `kube-system/bootstrap-token-<id>`, so `kubectl get secrets -n
/// kube-system` lists it and deleting it revokes it).
pub fn create(api: &Api, ttl: Duration, description: &str) -> anyhow::Result<BootstrapToken> {
    let token = BootstrapToken::generate()?;
    store(api, &spec(token.clone(), ttl, Utc::now(), description))?;
    Ok(token)
}

/// A token for joining nodes, valid for `ttl` from `now` (zero: forever),
/// with kubeadm's default usages.
pub fn spec(
    token: BootstrapToken,
    ttl: Duration,
    now: DateTime<Utc>,
    description: &str,
) -> TokenSecret {
    let expiration = (!ttl.is_zero())
        .then(|| chrono::Duration::from_std(ttl).ok())
        .flatten()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    TokenSecret {
        token,
        expiration,
        usages: vec![USAGE_AUTHENTICATION.into(), USAGE_SIGNING.into()],
        groups: Vec::new(),
        description: description.into(),
    }
}

fn secrets_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets")
}

/// The `message` of an API error's Status, or its body.
fn api_message(status: u16, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status} {}", body.trim()))
}

/// Writes the token's Secret; one already there is replaced, as kubeadm
/// updates an existing token it is given again.
pub fn store(api: &Api, spec: &TokenSecret) -> anyhow::Result<()> {
    let name = spec.token.secret_name();
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": spec.string_data(),
    })
    .to_string();
    let failed = |status: u16, answer: &str| {
        anyhow::anyhow!(
            "failed to create bootstrap token with name {name}: {}",
            api_message(status, answer)
        )
    };
    match api.try_post(&secrets_path(), &body)? {
        (201, _) => Ok(()),
        (409, _) => match api.try_put(&format!("{}/{name}", secrets_path()), &body)? {
            (200 | 201, _) => Ok(()),
            (status, answer) => Err(failed(status, &answer)),
        },
        (status, answer) => Err(failed(status, &answer)),
    }
}

/// The id of `text`, a token id or a whole token (kubeadm's wording when
/// it is neither).
fn token_id(text: &str) -> anyhow::Result<String> {
    if BootstrapToken::valid_id(text) {
        return Ok(text.to_string());
    }
    match BootstrapToken::parse(text) {
        Ok(token) if !text.contains(char::is_whitespace) => Ok(token.id),
        _ => bail!("given token didn't match pattern {PATTERN:?} or {ID_PATTERN:?}"),
    }
}

fn delete(api: &Api, id: &str) -> anyhow::Result<()> {
    let name = format!("{}{id}", skiff_pki::token::SECRET_PREFIX);
    match api.try_delete(&format!("{}/{name}", secrets_path()))? {
        (200 | 202, _) => Ok(()),
        (status, answer) => bail!(
            "failed to delete bootstrap token {id:?}: {}",
            api_message(status, &answer)
        ),
    }
}

fn list(api: &Api) -> anyhow::Result<()> {
    let (status, body) = api.try_get(&secrets_path())?;
    if status != 200 {
        bail!(
            "failed to list bootstrap tokens: {}",
            api_message(status, &body)
        );
    }
    let list: Value = serde_json::from_str(&body).context("failed to list bootstrap tokens")?;
    let (listing, broken) = listing(&list, Utc::now());
    // As kubeadm: a broken Secret is reported and the rest listed.
    for e in broken {
        progress::line(&e);
    }
    if let Some(listing) = listing {
        progress::out(&listing);
    }
    Ok(())
}

/// What `list` prints for a Secret list at `now`: the table of the
/// bootstrap tokens (none when there are none; an expired token that
/// still exists shows TTL `<invalid>`, as kubeadm's), and why any Secret
/// could not be read.
fn listing(list: &Value, now: DateTime<Utc>) -> (Option<String>, Vec<String>) {
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    for secret in list["items"].as_array().into_iter().flatten() {
        if secret["type"] != SECRET_TYPE {
            continue;
        }
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        match read_secret(name, secret).and_then(|t| row(&t, now)) {
            Ok(row) => rows.push(row),
            Err(e) => broken.push(format!("{e:#}")),
        }
    }
    let table = (!rows.is_empty()).then(|| table(&rows).trim_end_matches('\n').to_string());
    (table, broken)
}

fn read_secret(name: &str, secret: &Value) -> anyhow::Result<TokenSecret> {
    let mut data = BTreeMap::new();
    for (key, value) in secret["data"].as_object().into_iter().flatten() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .with_context(|| format!("Secret {NAMESPACE}/{name}: {key} is not base64"))?;
        data.insert(key.clone(), bytes);
    }
    Ok(TokenSecret::from_data(name, &data)?)
}

/// The columns of `skiff token list`, kubeadm's.
const COLUMNS: [&str; 6] = [
    "TOKEN",
    "TTL",
    "EXPIRES",
    "USAGES",
    "DESCRIPTION",
    "EXTRA GROUPS",
];

/// One token's cells at `now`.
fn row(token: &TokenSecret, now: DateTime<Utc>) -> anyhow::Result<[String; 6]> {
    let none = |text: String| {
        if text.is_empty() {
            "<none>".to_string()
        } else {
            text
        }
    };
    let (ttl, expires) = match &token.expiration {
        None => ("<forever>".to_string(), "<never>".to_string()),
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text).with_context(|| {
                format!(
                    "can't parse expiration time of bootstrap token \"{}\"",
                    token.token.secret_name()
                )
            })?;
            (
                short_human_duration(at.with_timezone(&Utc) - now),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        }
    };
    Ok([
        token.token.to_string(),
        ttl,
        expires,
        none(token.usages.join(",")),
        none(token.description.clone()),
        none(token.groups.join(",")),
    ])
}

/// A duration as kubectl and kubeadm print ages and TTLs: its largest
/// whole unit (`45s`, `59m`, `23h`, `6d`, `2y`); more than a second in
/// the past is `<invalid>` (an expired token), less is `0s`.
pub fn short_human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    if seconds < 60 {
        format!("{seconds}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if hours < 24 {
        format!("{hours}h")
    } else if hours < 24 * 365 {
        format!("{}d", hours / 24)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Left-aligned columns as kubeadm's tab writer lays them out: each as
/// wide as its widest cell plus 3 spaces, at least 10; the last column
/// unpadded.
fn table(rows: &[[String; 6]]) -> String {
    let header = COLUMNS.map(str::to_string);
    let all: Vec<&[String; 6]> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|c| {
            let widest = all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
            (widest + 3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Go duration (`time.ParseDuration`: `1h30m`, `90s`, `1.5h`, `0`), as
/// kubeadm's `--ttl` takes it; negative ones are refused.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!(
            "a negative TTL {text:?} makes no token; use 0 for one that never expires"
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!("time: unknown unit {unit:?} in duration {text:?}"));
            }
        };
        seconds += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_as_go_durations() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_ttl("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
        assert_eq!(parse_ttl("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_ttl("+2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_ttl("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            parse_ttl("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        for bad in ["", "h", ".h", "1..2h", "abc"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_ttl("-1s")
                .expect_err("negative")
                .contains("never expires")
        );
    }

    #[test]
    fn a_zero_ttl_never_expires_and_others_expire_in_utc() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00.750+02:00")
            .expect("time")
            .with_timezone(&Utc);
        let forever = spec(token.clone(), Duration::ZERO, now, "");
        assert_eq!(forever.expiration, None);
        assert!(!forever.string_data().contains_key("expiration"));
        let day = spec(token, Duration::from_secs(86_400), now, "lab");
        assert_eq!(day.expiration.as_deref(), Some("2030-01-01T22:00:00Z"));
        assert_eq!(day.usages, ["authentication", "signing"]);
        assert!(day.groups.is_empty());
        assert_eq!(day.string_data()["description"], "lab");
    }

    #[test]
    fn durations_print_as_kubeadm_prints_ttls() {
        let s = chrono::Duration::seconds;
        assert_eq!(short_human_duration(s(-5)), "<invalid>");
        assert_eq!(short_human_duration(s(-2)), "<invalid>");
        assert_eq!(short_human_duration(s(-1)), "0s");
        assert_eq!(short_human_duration(s(0)), "0s");
        assert_eq!(short_human_duration(s(59)), "59s");
        assert_eq!(short_human_duration(s(60)), "1m");
        assert_eq!(short_human_duration(s(3599)), "59m");
        assert_eq!(short_human_duration(s(86_399)), "23h");
        assert_eq!(short_human_duration(s(86_400)), "1d");
        assert_eq!(short_human_duration(s(400 * 86_400)), "1y");
    }

    #[test]
    fn rows_show_ttl_expiry_usages_and_none_markers() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let live = spec(token.clone(), Duration::from_secs(86_400), now, "lab");
        let cells = row(&live, now).expect("row");
        assert_eq!(
            cells,
            [
                "abcdef.0123456789abcdef",
                "1d",
                "2030-01-02T00:00:00Z",
                "authentication,signing",
                "lab",
                "<none>"
            ]
        );
        let later = now + chrono::Duration::days(2);
        assert_eq!(row(&live, later).expect("row")[1], "<invalid>");
        let bare = TokenSecret {
            token,
            expiration: None,
            usages: Vec::new(),
            groups: vec!["system:bootstrappers:x".into()],
            description: String::new(),
        };
        let cells = row(&bare, now).expect("row");
        assert_eq!(
            cells[1..],
            [
                "<forever>",
                "<never>",
                "<none>",
                "<none>",
                "system:bootstrappers:x"
            ]
        );
        let broken = TokenSecret {
            expiration: Some("tomorrow".into()),
            ..bare
        };
        assert!(
            format!("{:#}", row(&broken, now).expect_err("unparseable")).contains(
                "can't parse expiration time of bootstrap token \"bootstrap-token-abcdef\""
            )
        );
    }

    /// A token's Secret as the API lists it (`stringData` folded into
    /// base64 `data`).
    fn listed_secret(token: &TokenSecret) -> Value {
        let data: serde_json::Map<String, Value> = token
            .string_data()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::from(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        serde_json::json!({
            "metadata": {"name": token.token.secret_name(), "namespace": NAMESPACE},
            "type": SECRET_TYPE,
            "data": data,
        })
    }

    #[test]
    fn an_expired_token_that_still_exists_lists_as_invalid() {
        let made = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let live = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let gone = BootstrapToken::parse("zyxwvu.0123456789abcdef").expect("token");
        let list = serde_json::json!({"items": [
            listed_secret(&spec(live, Duration::from_secs(3 * 86_400), made, "live")),
            listed_secret(&spec(gone, Duration::from_secs(3600), made, "expired")),
            {"metadata": {"name": "other"}, "type": "Opaque", "data": {}},
        ]});
        // A day on: the first has two days left, the second ended 23h ago.
        let (table, broken) = listing(&list, made + chrono::Duration::days(1));
        assert!(broken.is_empty(), "{broken:?}");
        let table = table.expect("a table");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("TOKEN"), "{table}");
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[1])[..3],
            ["abcdef.0123456789abcdef", "2d", "2030-01-04T00:00:00Z"]
        );
        assert_eq!(
            cells(lines[2])[..3],
            [
                "zyxwvu.0123456789abcdef",
                "<invalid>",
                "2030-01-01T01:00:00Z"
            ]
        );
        // No bootstrap tokens: nothing printed, as kubeadm.
        let (none, _) = listing(&serde_json::json!({"items": []}), made);
        assert!(none.is_none());
    }

    #[test]
    fn the_table_aligns_columns_like_kubeadms() {
        let rows = [[
            "abcdef.0123456789abcdef".to_string(),
            "23h".into(),
            "2030-01-02T00:00:00Z".into(),
            "authentication,signing".into(),
            "<none>".into(),
            "<none>".into(),
        ]];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        // Widest cell + 3, at least 10: 26, 10, 23, 25, 14.
        assert_eq!(
            lines[0],
            format!(
                "{:26}{:10}{:23}{:25}{:14}EXTRA GROUPS",
                "TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"
            )
        );
        assert_eq!(
            lines[1],
            "abcdef.0123456789abcdef   23h       2030-01-02T00:00:00Z   authentication,signing   <none>        <none>"
        );
    }

    #[test]
    fn delete_takes_ids_or_whole_tokens_only() {
        assert_eq!(token_id("abcdef").expect("id"), "abcdef");
        assert_eq!(
            token_id("abcdef.0123456789abcdef").expect("token"),
            "abcdef"
        );
        let err = token_id("abc").expect_err("neither").to_string();
        assert_eq!(
            err,
            r#"given token didn't match pattern "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z" or "\\A([a-z0-9]{6})\\z""#
        );
        assert!(token_id(" abcdef.0123456789abcdef").is_err());
    }
}
