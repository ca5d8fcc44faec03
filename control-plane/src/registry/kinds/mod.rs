//! Per-kind behaviour of the built-in kinds, one module per kind (or
//! family of kinds).

pub mod pod;
