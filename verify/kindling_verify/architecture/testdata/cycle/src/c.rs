// mentions crate::a in a comment only
pub struct Third;
