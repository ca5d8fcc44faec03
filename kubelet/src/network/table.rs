//! Skiff's nftables table in a node's namespace: its name, and the pieces
//! of it that the masquerade rule (`node.rs`) and the guard chains
//! (`guard.rs`) both build on.

use ipnet::Ipv4Net;
use nftables::expr::{Expression, NamedExpression, Prefix};
use nftables::schema::Table;
use nftables::types::NfFamily;

/// Skiff's nftables table in the node's namespace.
pub const TABLE: &str = "skiff-node";

/// The table, as an nftables object.
pub(super) fn table() -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: TABLE.into(),
        handle: None,
    }
}

/// `net` as an address prefix to match against.
pub(super) fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(net.network().to_string().into())),
        len: u32::from(net.prefix_len()),
    }))
}
