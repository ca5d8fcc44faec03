//! Static bearer tokens from a CSV file (`--token-auth-file`), in
//! upstream's format: `token,user,uid,"group1,group2"` per line, the groups
//! column optional.
//!
//! Tokens are kept, and looked up, by their SHA-256 only: a lookup's time
//! then depends on the digest of what was presented, which tells a caller
//! guessing a token nothing about how close the guess was (a map of the
//! tokens themselves compares them byte by byte), and the tokens are not
//! in memory to leak through a `Debug` print.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::AuthnError;
use crate::auth::user::UserInfo;

/// The tokens of one file, by token.
#[derive(Debug, Default, Clone)]
pub struct TokenFile {
    users: HashMap<[u8; 32], UserInfo>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, AuthnError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthnError::TokenFile {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|why| AuthnError::TokenFile {
            path: path.display().to_string(),
            why,
        })
    }

    /// Parses the file's text; the error names the bad line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 {
                return Err(format!(
                    "line {}: want token,user,uid[,\"groups\"], got {} field(s)",
                    n + 1,
                    fields.len()
                ));
            }
            let (token, name, uid) = (&fields[0], &fields[1], &fields[2]);
            if token.is_empty() || name.is_empty() {
                return Err(format!("line {}: empty token or user", n + 1));
            }
            let groups: Vec<&str> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let mut user = UserInfo::authenticated(name.clone(), &groups);
            user.uid = uid.clone();
            if users.insert(digest(token), user).is_some() {
                return Err(format!("line {}: duplicate token", n + 1));
            }
        }
        Ok(Self { users })
    }

    /// The user of `token`, if it is one of the file's.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(&digest(token))
    }
}

/// Splits one CSV line: commas separate fields, double quotes group (with
/// `""` for a quote inside).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_users_with_their_groups() {
        let file =
            TokenFile::parse("# comment\nsecret1,jane,u1,\"viewers,lab\"\nsecret2,bob,u2\n\n")
                .expect("parses");
        let jane = file.user("secret1").expect("jane");
        assert_eq!(jane.name, "jane");
        assert_eq!(jane.uid, "u1");
        assert!(jane.in_group("viewers") && jane.in_group("lab"));
        assert!(jane.in_group(crate::auth::user::AUTHENTICATED));
        assert_eq!(file.user("secret2").map(|u| u.name.as_str()), Some("bob"));
        assert!(file.user("nope").is_none());
        assert!(!format!("{file:?}").contains("secret1"), "{file:?}");
    }

    #[test]
    fn short_lines_and_duplicates_are_refused_by_line() {
        assert!(
            TokenFile::parse("a,b")
                .expect_err("short")
                .contains("line 1")
        );
        assert!(
            TokenFile::parse("a,b,c\na,d,e")
                .expect_err("duplicate")
                .contains("line 2: duplicate")
        );
    }
}
