//! What objects are and what writing them does, shared by the HTTP edge
//! ([`crate::api`]) and the control plane's own actors
//! ([`crate::controllers`], [`crate::nodes`]). Nothing here imports either:
//! both depend on the registry, never the other way round.
//!
//! - [`resource_type`]: what a served type is, and its kind's
//!   [`Behaviour`](resource_type::Behaviour).
//! - [`kinds`]: one module per built-in kind (or family): its static types
//!   ([`kinds::PODS`], ...) and behaviour: defaults, status on create,
//!   validation, update rules, table columns.
//! - [`resources`]: the table of served types, looked up by name or kind.
//! - [`objects`]: [`objects::Objects`], reads and writes for the control
//!   plane's own actors, with the same defaults and validation as the API.
//! - [`strategy`]: what every write goes through: defaults, validation,
//!   strict decoding, each dispatched to the kind's behaviour.
//! - [`meta`]: server-owned metadata values (timestamps, uids, names).
//! - [`typecheck`]: Go-typed decoding errors of built-in fields.
//! - [`identity`]: a body's `apiVersion` and `kind` against its URL's type.
//! - [`admission`]: admission steps that read other objects (default StorageClass).
//! - [`pod_security`]: Pod Security Admission by namespace label.
//! - [`warnings`]: warnings a write returns to its client.
//! - [`allocation`]: Service cluster IPs and nodePorts, reserved in the store.
//! - [`published`]: endpoints of the Services that point at the control
//!   plane itself (`kubernetes`, `kube-dns`).
//! - [`deletion`]: what a delete does: grace periods, finalizers, propagation.
//! - [`events`]: Events recorded with upstream's correlation (counted repeats).
//! - [`events_v1`]: `events.k8s.io/v1` Events, a converted view of core Events.
//! - [`qos`]: a pod's QoS class; [`quantity`]: resource quantities.
//! - [`budget`]: PodDisruptionBudget arithmetic, for eviction and the
//!   disruption controller alike.
//! - [`schedule`]: CronJob schedules, validated and iterated.
//! - [`watch`]: following a store prefix (list, then watch, re-list).
//! - [`error`]: `Status` errors.

pub mod admission;
pub mod allocation;
pub mod budget;
pub mod deletion;
pub mod error;
pub mod events;
pub mod events_v1;
pub mod feed;
pub mod identity;
pub mod kinds;
pub mod meta;
pub mod objects;
pub mod pod_security;
pub mod published;
pub mod qos;
pub mod quantity;
pub mod resource_type;
pub mod resources;
pub mod schedule;
pub mod service_account;
pub mod strategy;
pub mod typecheck;
pub mod warnings;
pub mod watch;
