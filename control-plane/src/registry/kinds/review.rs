//! The create-only review kinds: the access reviews `kubectl auth` uses
//! (`authorization.k8s.io/v1`), `SelfSubjectReview` and `TokenReview`
//! (`authentication.k8s.io/v1`, what webhooks and proxies in front of the
//! API ask a token's owner with). Nothing is stored: the API answers a
//! create with the object and its status ([`crate::auth::review`]).

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
};

use crate::registry::resource_type::{Behaviour, ResourceType, rt};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// `selfsubjectaccessreviews.authorization.k8s.io`.
pub const SELFSUBJECTACCESSREVIEWS: &ResourceType = &rt! {
    AUTHORIZATION, "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
    "SelfSubjectAccessReview", false, &[], &[], &[], &Review(Kind::SelfAccess)
};

/// `selfsubjectrulesreviews.authorization.k8s.io`.
pub const SELFSUBJECTRULESREVIEWS: &ResourceType = &rt! {
    AUTHORIZATION, "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview",
    "SelfSubjectRulesReview", false, &[], &[], &[], &Review(Kind::SelfRules)
};

/// `subjectaccessreviews.authorization.k8s.io`.
pub const SUBJECTACCESSREVIEWS: &ResourceType = &rt! {
    AUTHORIZATION, "v1", "subjectaccessreviews", "subjectaccessreview",
    "SubjectAccessReview", false, &[], &[], &[], &Review(Kind::Access)
};

/// `localsubjectaccessreviews.authorization.k8s.io`.
pub const LOCALSUBJECTACCESSREVIEWS: &ResourceType = &rt! {
    AUTHORIZATION, "v1", "localsubjectaccessreviews", "localsubjectaccessreview",
    "LocalSubjectAccessReview", true, &[], &[], &[], &Review(Kind::LocalAccess)
};

/// `selfsubjectreviews.authentication.k8s.io`.
pub const SELFSUBJECTREVIEWS: &ResourceType = &rt! {
    AUTHENTICATION, "v1", "selfsubjectreviews", "selfsubjectreview",
    "SelfSubjectReview", false, &[], &[], &[], &Review(Kind::SelfSubject)
};

/// `tokenreviews.authentication.k8s.io`.
pub const TOKENREVIEWS: &ResourceType = &rt! {
    AUTHENTICATION, "v1", "tokenreviews", "tokenreview",
    "TokenReview", false, &[], &[], &[], &Review(Kind::Token)
};

/// Which review.
#[allow(missing_docs)] // the kinds' names
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SelfAccess,
    SelfRules,
    Access,
    LocalAccess,
    SelfSubject,
    Token,
}

/// A review kind: served as `create` only.
pub struct Review(pub Kind);

/// Which review `rt` is, if it is one (answered, never stored).
pub fn kind_of(rt: &ResourceType) -> Option<Kind> {
    [
        (SELFSUBJECTACCESSREVIEWS, Kind::SelfAccess),
        (SELFSUBJECTRULESREVIEWS, Kind::SelfRules),
        (SUBJECTACCESSREVIEWS, Kind::Access),
        (LOCALSUBJECTACCESSREVIEWS, Kind::LocalAccess),
        (SELFSUBJECTREVIEWS, Kind::SelfSubject),
        (TOKENREVIEWS, Kind::Token),
    ]
    .into_iter()
    .find_map(|(r, kind)| (r == rt).then_some(kind))
}

impl Behaviour for Review {
    fn verbs(&self) -> &'static [&'static str] {
        &["create"]
    }

    fn round_trip(&self, obj: &serde_json::Value) -> Option<serde_json::Value> {
        use super::support::round;
        match self.0 {
            Kind::SelfAccess => round::<SelfSubjectAccessReview>(obj),
            Kind::SelfRules => round::<SelfSubjectRulesReview>(obj),
            Kind::Access => round::<SubjectAccessReview>(obj),
            Kind::LocalAccess => round::<LocalSubjectAccessReview>(obj),
            Kind::SelfSubject => round::<SelfSubjectReview>(obj),
            Kind::Token => round::<TokenReview>(obj),
        }
    }

    fn add_schema(&self, generator: &mut schemars::SchemaGenerator) {
        let _ = match self.0 {
            Kind::SelfAccess => generator.subschema_for::<SelfSubjectAccessReview>(),
            Kind::SelfRules => generator.subschema_for::<SelfSubjectRulesReview>(),
            Kind::Access => generator.subschema_for::<SubjectAccessReview>(),
            Kind::LocalAccess => generator.subschema_for::<LocalSubjectAccessReview>(),
            Kind::SelfSubject => generator.subschema_for::<SelfSubjectReview>(),
            Kind::Token => generator.subschema_for::<TokenReview>(),
        };
    }
}
