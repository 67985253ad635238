//! Validated input types. A value of these types cannot hold bad data: they
//! are built only by `parse`, which collects every field's problem at once.

mod fields;
pub mod item;
pub mod page;
pub mod user;
