//! SQL lives here and only here. Functions take a connection so that the
//! route decides where it comes from (the request's pooled connection).

pub mod items;
pub mod users;
