pub struct Helper;
