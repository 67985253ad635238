// The parent names its children and they use its items: not a circle.
pub mod health;
pub mod items;
pub mod openapi;

pub use self::health::live;
pub const PROBLEM_JSON: &str = "application/problem+json";
