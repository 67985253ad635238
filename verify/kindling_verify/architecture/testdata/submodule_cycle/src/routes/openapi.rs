// ...which lists the handlers: the circle.
use crate::routes::{health, items};

pub const BAD_ID: &str = "bad id";

pub fn paths() -> [fn() -> &'static str; 2] {
    [health::live, items::get]
}
