pub fn endpoint() {}
