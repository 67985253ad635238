use super::PROBLEM_JSON;

pub fn live() -> &'static str {
    PROBLEM_JSON
}
