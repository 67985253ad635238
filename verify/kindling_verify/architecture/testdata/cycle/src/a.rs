use crate::b::Thing;
