pub mod cli;
pub mod sibling;
