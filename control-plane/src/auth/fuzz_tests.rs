//! Seeded, bounded fuzzing of every decoder of the authentication edge,
//! fed directly: the `Authorization` header, ServiceAccount JWTs, the
//! impersonation headers, review and TokenRequest bodies and the token
//! file. Each must answer every input with a value or a typed error (no
//! panic), and nothing forged may authenticate. Deterministic: the seeds
//! are fixed, so a failure names its input and reproduces.
//!
//! The node port's `Join` is fuzzed beside it
//! ([`crate::nodes::bootstrap`]'s tests), with [`Rng`] from here.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::authn::service_account::ServiceAccountTokens;
use super::authn::{Authenticator, Outcome, PeerCertificate, bearer_token, token_file};
use super::authz::{Authorization, Mode};
use super::tokens::{Claims, KubernetesClaims, ObjectClaim, TokenSigner};
use super::user::{MASTERS, UserInfo};
use crate::registry::kinds;
use crate::registry::kinds::review::Kind;
use crate::registry::objects::Objects;

/// Inputs per decoder: enough to reach the odd corners, few enough for a
/// unit test run (each decoder takes well under a second).
pub(crate) const ROUNDS: usize = 3_000;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub(crate) use skiff_fuzzing::{Rng, mutate};

/// A random JSON value, at most `depth` deep, its keys drawn from `keys`
/// (so objects look like what the decoder reads).
pub(crate) fn json_value(rng: &mut Rng, keys: &[&str], depth: usize) -> Value {
    let leaf = depth == 0 || rng.below(3) == 0;
    match rng.below(if leaf { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next_u64() as i64 >> rng.below(64)),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        4 => json!(rng.pick(keys)),
        5 => {
            let n = rng.below(12);
            json!(String::from_utf8_lossy(&rng.bytes(n)).into_owned())
        }
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| json_value(rng, keys, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (rng.pick(keys).to_string(), json_value(rng, keys, depth - 1)))
                .collect(),
        ),
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(now: i64, sa_uid: &str, pod: Option<ObjectClaim>) -> Claims {
    Claims {
        aud: vec![ISSUER.into()],
        exp: now + 3600,
        iat: now,
        iss: ISSUER.into(),
        jti: "j1".into(),
        nbf: now,
        sub: "system:serviceaccount:lab:robot".into(),
        kubernetes: KubernetesClaims {
            namespace: "lab".into(),
            serviceaccount: ObjectClaim {
                name: "robot".into(),
                uid: sa_uid.into(),
            },
            pod,
            ..KubernetesClaims::default()
        },
    }
}

/// A store with ServiceAccount `lab/robot` and its pod `lab/p`, the
/// authenticator over it, and a valid token bound to the pod.
async fn service_accounts() -> (ServiceAccountTokens, Arc<TokenSigner>, Objects, String, i64) {
    let objects = Objects::in_memory();
    let sa = objects
        .create(
            kinds::SERVICEACCOUNTS,
            json!({"metadata": {"name": "robot", "namespace": "lab"}}),
        )
        .await
        .expect("sa");
    let pod = objects
        .create(
            kinds::PODS,
            json!({"metadata": {"name": "p", "namespace": "lab"},
                "spec": {"serviceAccountName": "robot",
                    "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .expect("pod");
    let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
    let now = chrono::Utc::now().timestamp();
    let pod_claim = ObjectClaim {
        name: "p".into(),
        uid: crate::meta::uid(&pod).into(),
    };
    let token = signer
        .sign(&claims(now, crate::meta::uid(&sa), Some(pod_claim)))
        .expect("sign");
    (
        ServiceAccountTokens::new(signer.clone(), objects.clone()),
        signer,
        objects,
        token,
        now,
    )
}

/// Hand-made variants of a valid token that must all be refused: other
/// algorithms, a payload changed under the old signature, another key's
/// signature, HS256 keyed with the public key, wrong shapes, huge and
/// deeply nested parts.
fn forgeries(token: &str, signer: &TokenSigner, now: i64, sa_uid: &str) -> Vec<String> {
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let mut forged = Vec::new();
    for h in [
        json!({"alg": "none"}),
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "HS256"}),
        json!({"alg": "RS256", "kid": "x"}),
        json!({"alg": "es256"}),
        json!({"alg": ["ES256"]}),
        json!({"alg": "ES256", "kid": "../../etc/passwd", "typ": "JWT", "jku": "http://x"}),
        json!("ES256"),
        json!(null),
    ] {
        let h = b64(h.to_string().as_bytes());
        forged.push(format!("{h}.{payload}."));
        forged.push(format!("{h}.{payload}.{signature}"));
    }
    // A changed payload under the old signature: another account, no
    // expiry, more audiences.
    let mut admin = claims(now, sa_uid, None);
    admin.kubernetes.namespace = "kube-system".into();
    admin.sub = "system:serviceaccount:kube-system:admin".into();
    let mut forever = claims(now, sa_uid, None);
    forever.exp = i64::MAX;
    for c in [admin, forever] {
        let p = b64(&serde_json::to_vec(&c).expect("json"));
        forged.push(format!("{header}.{p}.{signature}"));
        // HS256 keyed with the public key (the classic key confusion).
        let public = signer.jwks()["keys"][0]["x"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let h = b64(br#"{"alg":"HS256","kid":"x"}"#);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{h}.{p}").as_bytes());
        forged.push(format!("{h}.{p}.{}", b64(tag.as_ref())));
        // Signed by another key.
        let other = TokenSigner::generate(ISSUER).expect("key");
        forged.push(other.sign(&c).expect("sign"));
    }
    forged.extend([
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}..{signature}"),
        format!("{header}.{payload}.=={signature}"),
        format!("{header}.{payload}.{}", "A".repeat(86)),
        format!("{header}.{payload}.{}", &signature[..signature.len() / 2]),
        format!("{}.{payload}.{signature}", b64(nested(100_000).as_bytes())),
        format!("{header}.{}.{signature}", b64(nested(100_000).as_bytes())),
        format!("{header}.{}.{signature}", b64(&vec![b'{'; 300_000])),
        format!("{header}.{payload}.{signature}{}", ".".repeat(10_000)),
        ".".repeat(100_000),
        format!("{header}.{payload}.{signature} "),
        format!("{header}.{payload}\u{0}.{signature}"),
        format!("{header}.{payload}.{signature}=="),
        format!("{}.{}.{}", "é".repeat(10), "ß", "字"),
    ]);
    forged
}

#[tokio::test]
async fn service_account_tokens_refuse_every_forgery_and_mutation() {
    let (tokens, signer, objects, token, now) = service_accounts().await;
    assert!(tokens.user(&token, now).await.is_ok(), "the valid token");
    let sa_uid = crate::meta::uid(
        &objects
            .get(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
            .await
            .expect("sa"),
    )
    .to_string();
    for (i, forged) in forgeries(&token, &signer, now, &sa_uid).iter().enumerate() {
        let verdict = tokens.user(forged, now).await;
        assert!(verdict.is_err(), "forgery #{i} {forged:.120} accepted");
    }
    let mut rng = Rng::new(0x5eed_a17f_0000_0001);
    let pool = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    for i in 0..ROUNDS {
        let bytes = mutate(&mut rng, token.as_bytes(), pool);
        let mutated = String::from_utf8_lossy(&bytes);
        let verdict = tokens.user(&mutated, now).await;
        if mutated != token {
            assert!(verdict.is_err(), "mutation #{i} {mutated} accepted");
        }
    }
}

#[tokio::test]
async fn tokens_of_our_key_with_hostile_claims_are_typed_errors() {
    // What only a holder of the signing key could make: the authenticator
    // still answers each with a user or a typed error, never a panic, and
    // a user only when the store holds what the claims name.
    let (tokens, signer, objects, _, now) = service_accounts().await;
    let sa_uid = crate::meta::uid(
        &objects
            .get(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
            .await
            .expect("sa"),
    )
    .to_string();
    let mut rng = Rng::new(0x5eed_a17f_0000_0002);
    let names: &[&str] = &[
        "", "robot", "p", "lab", "..", "a/b", "%2F", "x:y", "é", "\u{0}", "-", ".",
    ];
    for i in 0..ROUNDS / 10 {
        let mut c = claims(now, &sa_uid, None);
        let k = &mut c.kubernetes;
        k.namespace = rng.pick(names).to_string();
        k.serviceaccount.name = rng.pick(names).to_string();
        if rng.below(2) == 0 {
            k.serviceaccount.uid = rng.pick(names).to_string();
        }
        let object = |rng: &mut Rng| {
            (rng.below(2) == 0).then(|| ObjectClaim {
                name: rng.pick(names).to_string(),
                uid: rng.pick(names).to_string(),
            })
        };
        k.pod = object(&mut rng);
        k.secret = object(&mut rng);
        k.node = object(&mut rng);
        let times = [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            now - 61,
            now,
            now + 61,
            i64::MAX,
        ];
        if rng.below(3) == 0 {
            c.exp = times[rng.below(times.len())];
            c.nbf = times[rng.below(times.len())];
        }
        if rng.below(4) == 0 {
            c.aud = vec![rng.pick(names).to_string()];
        }
        let token = signer.sign(&c).expect("sign");
        if let Ok(user) = tokens.user(&token, now).await {
            let k = &c.kubernetes;
            assert!(
                k.namespace == "lab"
                    && k.serviceaccount.name == "robot"
                    && k.pod.is_none()
                    && k.secret.is_none(),
                "#{i}: {c:?} authenticated as {user:?}"
            );
        }
    }
}

#[tokio::test]
async fn deleted_accounts_pods_and_secrets_take_their_tokens_with_them() {
    let (tokens, signer, objects, token, now) = service_accounts().await;
    let secret = objects
        .create(
            kinds::SECRETS,
            json!({"metadata": {"name": "s", "namespace": "lab"}}),
        )
        .await
        .expect("secret");
    let sa_uid = crate::meta::uid(
        &objects
            .get(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
            .await
            .expect("sa"),
    )
    .to_string();
    let mut bound = claims(now, &sa_uid, None);
    bound.kubernetes.secret = Some(ObjectClaim {
        name: "s".into(),
        uid: crate::meta::uid(&secret).into(),
    });
    let secret_token = signer.sign(&bound).expect("sign");
    let plain = signer.sign(&claims(now, &sa_uid, None)).expect("sign");
    assert!(tokens.user(&secret_token, now).await.is_ok());
    objects
        .delete(kinds::SECRETS, Some("lab"), "s")
        .await
        .expect("delete secret");
    assert!(tokens.user(&secret_token, now).await.is_err());
    // The same name made again is another Secret.
    objects
        .create(
            kinds::SECRETS,
            json!({"metadata": {"name": "s", "namespace": "lab"}}),
        )
        .await
        .expect("secret again");
    assert!(tokens.user(&secret_token, now).await.is_err());
    assert!(tokens.user(&plain, now).await.is_ok());
    objects
        .delete(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
        .await
        .expect("delete sa");
    for t in [&plain, &token, &secret_token] {
        assert!(tokens.user(t, now).await.is_err());
    }
}

fn header_map(values: &[Vec<u8>]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(axum::http::header::AUTHORIZATION, v);
        }
    }
    h
}

#[tokio::test]
async fn authorization_headers_never_panic_and_authenticate_only_real_tokens() {
    let (tokens, _, _, sa_token, _) = service_accounts().await;
    let authenticator = Authenticator {
        tokens: token_file::TokenFile::parse("s3cret,jane,u1\n").expect("file"),
        service_accounts: Some(tokens),
        ..Authenticator::default()
    };
    let valid = ["s3cret", sa_token.as_str()];
    let seeds: Vec<String> = vec![
        "Bearer s3cret".into(),
        format!("Bearer {sa_token}"),
        "bearer s3cret".into(),
        "BEARER s3cret".into(),
        "Basic amFuZTpzM2NyZXQ=".into(),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer  s3cret".into(),
        "Bearer s3cret s3cret".into(),
        " Bearer\ts3cret ".into(),
        "Negotiate s3cret".into(),
        "s3cret".into(),
        String::new(),
        format!("Bearer {}", "s".repeat(70_000)),
        format!("Bearer {}", "a.".repeat(40_000)),
    ];
    let none = PeerCertificate::None;
    let mut rng = Rng::new(0x5eed_a17f_0000_0003);
    let pool = b"Bearer s3cret.\t ,;=\x80\xff";
    for i in 0..ROUNDS {
        let count = 1 + rng.below(3);
        let values: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let seed = seeds[rng.below(seeds.len())].as_bytes();
                if rng.below(3) == 0 {
                    seed.to_vec()
                } else {
                    mutate(&mut rng, seed, pool)
                }
            })
            .collect();
        let headers = header_map(&values);
        let outcome = authenticator.authenticate(&none, &headers).await;
        if let Outcome::User(user) = &outcome {
            let token = bearer_token(&headers);
            assert!(
                token.is_some_and(|t| valid.contains(&t)),
                "#{i} {values:?} authenticated as {user:?}"
            );
        }
    }
}

fn impersonation_headers(rng: &mut Rng) -> HeaderMap {
    let names: &[&str] = &[
        "impersonate-user",
        "impersonate-group",
        "impersonate-uid",
        "impersonate-extra-scopes",
        "impersonate-extra-a%2Fb",
        "impersonate-extra-%zz",
        "impersonate-extra-",
        "impersonate-extra-%E2%9C%93",
    ];
    let values: &[&[u8]] = &[
        b"",
        b"jane",
        b"system:admin",
        b"system:anonymous",
        b"system:masters",
        b"system:authenticated",
        b"system:unauthenticated",
        b"system:serviceaccount:kube-system:admin",
        b"system:serviceaccount::",
        b"system:serviceaccount:a:b:c",
        b"system:node:n1",
        b"\x80\xff",
        b" spaced ",
    ];
    let mut h = HeaderMap::new();
    for _ in 0..rng.below(6) {
        let name = rng.pick(names);
        let picked = rng_pick_bytes(rng, values);
        let value = if rng.below(4) == 0 {
            mutate(rng, picked, b"%:\x80 a")
        } else {
            picked.to_vec()
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            h.append(n, v);
        }
    }
    h
}

fn rng_pick_bytes<'a>(rng: &mut Rng, items: &[&'a [u8]]) -> &'a [u8] {
    items[rng.below(items.len())]
}

#[test]
fn impersonation_headers_never_panic_and_only_those_allowed_act_as_others() {
    let authz = Authorization::new(&[Mode::Rbac], Arc::default());
    let root = UserInfo::authenticated("root", &[MASTERS]);
    let jane = UserInfo::authenticated("jane", &[]);
    let mut rng = Rng::new(0x5eed_a17f_0000_0004);
    for i in 0..ROUNDS {
        let headers = impersonation_headers(&mut rng);
        if !super::impersonation::requested(&headers) {
            continue;
        }
        match super::impersonation::impersonate(&authz, &jane, &headers) {
            Ok(user) => panic!("#{i} {headers:?}: jane acts as {user:?}"),
            Err(e) => assert!(e.code == 403 || e.code == 400, "#{i} {headers:?}: {e:?}"),
        }
        match super::impersonation::impersonate(&authz, &root, &headers) {
            Ok(user) => assert!(
                !(user.name.is_empty()),
                "#{i} {headers:?}: acting as a nameless user {user:?}"
            ),
            Err(e) => assert_eq!(e.code, 400, "#{i} {headers:?}: {e:?}"),
        }
    }
}

#[tokio::test]
async fn review_bodies_never_panic_and_fail_as_4xx() {
    let authz = Authorization::new(&[Mode::Rbac], Arc::default());
    let authn = super::authn::Authenticator::default();
    let reviewers = super::review::Reviewers {
        authz: &authz,
        authn: &authn,
    };
    let jane = UserInfo::authenticated("jane", &[]);
    let keys: &[&str] = &[
        "spec",
        "metadata",
        "status",
        "kind",
        "apiVersion",
        "resourceAttributes",
        "nonResourceAttributes",
        "verb",
        "resource",
        "namespace",
        "name",
        "group",
        "path",
        "user",
        "groups",
        "extra",
        "uid",
        "creationTimestamp",
        "token",
        "audiences",
    ];
    let reviews = [
        (kinds::SELFSUBJECTACCESSREVIEWS, Kind::SelfAccess),
        (kinds::SELFSUBJECTRULESREVIEWS, Kind::SelfRules),
        (kinds::SUBJECTACCESSREVIEWS, Kind::Access),
        (kinds::LOCALSUBJECTACCESSREVIEWS, Kind::LocalAccess),
        (kinds::SELFSUBJECTREVIEWS, Kind::SelfSubject),
        (kinds::TOKENREVIEWS, Kind::Token),
    ];
    let mut rng = Rng::new(0x5eed_a17f_0000_0005);
    for i in 0..ROUNDS {
        let body = json_value(&mut rng, keys, 5);
        let (rt, kind) = reviews[rng.below(reviews.len())];
        let namespace = [None, Some("default"), Some("")][rng.below(3)];
        match super::review::answer(reviewers, &jane, rt, kind, namespace, body.clone()).await {
            Ok(answered) => {
                assert!(answered["status"].is_object(), "#{i} {body}: {answered}");
                // jane has no rights: nothing she asks about herself is allowed.
                if kind == Kind::SelfAccess {
                    assert_eq!(answered["status"]["allowed"], false, "#{i} {body}");
                }
            }
            Err(e) => assert!((400..500).contains(&e.code), "#{i} {body}: {e:?}"),
        }
    }
}

#[tokio::test]
async fn token_request_bodies_never_panic_and_fail_as_4xx() {
    let (_, signer, objects, _, now) = service_accounts().await;
    let keys: &[&str] = &[
        "spec",
        "audiences",
        "expirationSeconds",
        "boundObjectRef",
        "kind",
        "name",
        "uid",
        "apiVersion",
        "Pod",
        "Secret",
        "p",
        "robot",
    ];
    let seconds = [
        json!(599),
        json!(600),
        json!(1_u64 << 32),
        json!((1_u64 << 32) + 1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-1),
        json!(1e300),
        json!(3600.5),
        json!("3600"),
    ];
    let mut rng = Rng::new(0x5eed_a17f_0000_0006);
    for i in 0..ROUNDS / 3 {
        let mut body = json_value(&mut rng, keys, 4);
        if rng.below(2) == 0 && body.is_object() {
            body["spec"] = json!({
                "expirationSeconds": seconds[rng.below(seconds.len())],
                "boundObjectRef": json_value(&mut rng, keys, 2),
                "audiences": json_value(&mut rng, keys, 1),
            });
        }
        let spec = match crate::api::token_request::spec_of(&body) {
            Ok(spec) => spec,
            Err(e) => {
                assert_eq!(e.code, 400, "#{i} {body}: {e:?}");
                continue;
            }
        };
        let account = ["robot", "p", ""][rng.below(3)];
        match super::token_request::issue(&signer, &objects, "lab", account, &spec, now).await {
            Ok(issued) => assert!(issued.expires > now, "#{i} {body}"),
            Err(e) => {
                let status = crate::api::token_request::status_of(e, account);
                assert!((400..500).contains(&status.code), "#{i} {body}: {status:?}");
            }
        }
    }
}

#[test]
fn token_file_lines_never_panic() {
    let seeds: &[&str] = &[
        "s3cret,jane,u1,\"a,b\"\n",
        "t,u,i\n# comment\n\n",
        "\"q\"\"uoted\",name,uid,\"g\"\n",
        "a,b\n",
        ",,,\n",
        "\"unterminated,x,y\n",
        "t,u,i,\"\",extra,fields\n",
    ];
    let mut rng = Rng::new(0x5eed_a17f_0000_0007);
    for i in 0..ROUNDS {
        let seed = rng.pick(seeds);
        let text = String::from_utf8_lossy(&mutate(&mut rng, seed.as_bytes(), b",\"\n# \t\r"))
            .into_owned();
        if let Ok(file) = token_file::TokenFile::parse(&text) {
            // Whatever parsed authenticates as a named user.
            for token in ["s3cret", "t", "q\"uoted", ""] {
                if let Some(user) = file.user(token) {
                    assert!(!user.name.is_empty(), "#{i} {text:?}");
                }
            }
        }
    }
}
