// Every form of import this crate's code uses; each names a different module.
use std::{fmt, io::{self, Write}};

use crate::config::{self, Settings};
use crate::{db, telemetry};
pub use crate::{
    routes::{items::{self as item_routes}, users as people},
    error::Problem,
};
pub(crate) use crate::domain::*;
use super::sibling::Helper;
use self::inner::Local;
// use crate::commented_out;

mod inner {
    pub struct Local;
}

pub fn run() {
    crate::telemetry::metrics::endpoint();
}
