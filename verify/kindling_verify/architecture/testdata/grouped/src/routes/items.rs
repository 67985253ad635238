pub struct Marker;
