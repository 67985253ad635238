pub mod items;
pub mod users;
