use crate::a::Other;
use crate::c::Third;
